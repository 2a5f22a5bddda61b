//! Vocabulary of the generator: NIP-29 event kinds, key-derivation domains, flag and role
//! names, and the words names, descriptions and chat messages are made of.

pub(super) const CHAT: u16 = 9;
pub(super) const PUT_USER: u16 = 9000;
pub(super) const REMOVE_USER: u16 = 9001;
pub(super) const EDIT_METADATA: u16 = 9002;
pub(super) const DELETE_EVENT: u16 = 9005;
pub(super) const CREATE_GROUP: u16 = 9007;
pub(super) const DELETE_GROUP: u16 = 9008;
pub(super) const CREATE_INVITE: u16 = 9009;
pub(super) const JOIN: u16 = 9021;
pub(super) const LEAVE: u16 = 9022;
pub(super) const SNAPSHOT_METADATA: u16 = 39_000;
pub(super) const SNAPSHOT_ADMINS: u16 = 39_001;
pub(super) const SNAPSHOT_MEMBERS: u16 = 39_002;
pub(super) const SNAPSHOT_ROLES: u16 = 39_003;

/// Key-derivation domains.
pub(super) const DOMAIN_USER: u64 = 1;
pub(super) const DOMAIN_RELAY: u64 = 2;
pub(super) const DOMAIN_FORGER: u64 = 3;
pub(super) const DOMAIN_AUX: u64 = 4;
pub(super) const DOMAIN_PLAN: u64 = 5;

pub(super) const FLAGS: [&str; 4] = ["private", "closed", "hidden", "restricted"];
pub(super) const LEGACY_FLAGS: [&str; 4] = ["public", "open", "visible", "unrestricted"];
pub(super) const JSON_FLAGS: [&str; 4] = ["private", "closed", "hidden", "write-restricted"];

pub(super) const ROLES: [(&str, &str); 3] = [
    (
        "admin",
        "Can edit metadata, add and remove users, delete events",
    ),
    ("moderator", "Can remove users and delete events"),
    ("writer", "May post in write-restricted groups"),
];

pub(super) const WORDS: [&str; 48] = [
    "the",
    "group",
    "relay",
    "meeting",
    "tomorrow",
    "works",
    "nice",
    "idea",
    "let's",
    "ship",
    "it",
    "code",
    "review",
    "coffee",
    "bitcoin",
    "nostr",
    "lightning",
    "keys",
    "event",
    "kind",
    "moderation",
    "please",
    "thanks",
    "agreed",
    "hello",
    "everyone",
    "new",
    "release",
    "tested",
    "bug",
    "fixed",
    "deploy",
    "weekend",
    "music",
    "photo",
    "link",
    "shared",
    "question",
    "answer",
    "today",
    "client",
    "zap",
    "note",
    "garden",
    "rust",
    "build",
    "later",
    "maybe",
];

pub(super) const UNICODE_WORDS: [&str; 18] = [
    "café",
    "naïve",
    "Grüße",
    "日本語",
    "こんにちは",
    "привет",
    "مرحبا",
    "नमस्ते",
    "🎉",
    "👍",
    "🚀",
    "⚡",
    "😀",
    "你好",
    "señor",
    "øre",
    "Ελληνικά",
    "한국어",
];

pub(super) const ADJECTIVES: [&str; 16] = [
    "Quiet",
    "Lightning",
    "Open",
    "Rusty",
    "Sunny",
    "Midnight",
    "Little",
    "Grand",
    "Nomad",
    "Cozy",
    "Wild",
    "Early",
    "Secret",
    "Public",
    "Happy",
    "Northern",
];

pub(super) const NOUNS: [&str; 16] = [
    "Garden", "Devs", "Club", "Lounge", "Circle", "Builders", "Readers", "Runners", "Plebs",
    "Studio", "Kitchen", "Workshop", "Chess", "Hikers", "Traders", "Choir",
];

pub(super) const ALPHANUMERIC: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
