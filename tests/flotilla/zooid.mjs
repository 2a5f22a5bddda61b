// zooid's README configuration directory (tests/fixtures/zooid: `localhost` and
// `my-relay.example.com`) served by one `highwater relay --config-dir` process, driven
// through the nostr-tools library (package-lock.json pins it) as a client of each virtual
// relay by its host name: each relay's own NIP-11, its own groups, its own policy
// (zooid's default `admin_create_only`; `auto_join` on one relay and not the other), and
// a NIP-86 `banpubkey` signed with NIP-98 after which the banned key's events are
// refused on that relay only. Exits non-zero on the first failed step.
//
// Both host names resolve to the relay's loopback address (the `lookup` given to every
// connection, as DNS would in a deployment), so the client sends each relay's own
// `Host` header and `u` tag without being told.
import {spawn} from "node:child_process"
import {cpSync, mkdtempSync, rmSync} from "node:fs"
import {request as httpRequest} from "node:http"
import {tmpdir} from "node:os"
import {join} from "node:path"
import {createServer} from "node:net"
import WebSocket from "ws"
import {finalizeEvent, generateSecretKey, getPublicKey} from "nostr-tools/pure"
import {Relay, useWebSocketImplementation} from "nostr-tools/relay"
import {fetchRelayInformation} from "nostr-tools/nip11"
import {getToken} from "nostr-tools/nip98"
import {hexToBytes} from "nostr-tools/utils"

const bin = process.env.HIGHWATER_BIN ?? new URL("../../target/debug/highwater", import.meta.url).pathname
const fixtures = new URL("../fixtures/zooid", import.meta.url).pathname
const fail = message => {
  console.error(`FAIL: ${message}`)
  process.exitCode = 1
  throw new Error(message)
}
const check = (ok, message) => ok || fail(message)
const step = name => console.log(`step: ${name}`)
const sleep = ms => new Promise(r => setTimeout(r, ms))

// Every host name is the relay's address here.
const lookup = (hostname, options, callback) =>
  options?.all ? callback(null, [{address: "127.0.0.1", family: 4}]) : callback(null, "127.0.0.1", 4)

// nostr-tools' relays open their sockets with this: `ws`, resolving through `lookup`.
class LoopbackWebSocket extends WebSocket {
  constructor(url, protocols, options) {
    super(url, protocols, {...options, lookup})
  }
}
useWebSocketImplementation(LoopbackWebSocket)

// fetch over node:http resolving through `lookup` (nostr-tools' NIP-11 calls the global
// fetch; NIP-86 calls are POSTs with it).
globalThis.fetch = (url, init = {}) =>
  new Promise((resolve, reject) => {
    const req = httpRequest(url, {method: init.method ?? "GET", headers: init.headers, lookup}, res => {
      const chunks = []
      res.on("data", c => chunks.push(c))
      res.on("end", () => resolve(new Response(Buffer.concat(chunks), {status: res.statusCode, headers: res.headers})))
    })
    req.on("error", reject)
    req.end(init.body)
  })

const freePort = () =>
  new Promise(resolve => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const {port} = server.address()
      server.close(() => resolve(port))
    })
  })

// The two virtual relays, as the fixtures configure them.
const relays = [
  {
    file: "localhost",
    host: "localhost",
    name: "Localhost Relay",
    secret: "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63",
    autoJoin: true,
  },
  {
    file: "my-relay.example.com",
    host: "my-relay.example.com",
    name: "My relay",
    icon: "https://example.com/icon.png",
    pubkey: "d9254d9898fd4728f7e2b32b87520221a50f6b8b97d935d7da2de8923988aa6d",
    secret: "5c0c523f52a5b6fad39ed2403092df8cebc36318b39383bca6c00808626fab3a",
    autoJoin: false,
  },
]

const port = await freePort()
const dir = mkdtempSync(join(tmpdir(), "highwater-zooid-"))
cpSync(fixtures, dir, {recursive: true})
const relay = spawn(bin, ["relay", "--config-dir", dir, "--create", "--bind", `127.0.0.1:${port}`], {
  stdio: ["ignore", "inherit", "inherit"],
})
const stop = () => {
  relay.kill("SIGTERM")
  rmSync(dir, {recursive: true, force: true})
}

for (const r of relays) {
  r.url = `ws://${r.host}:${port}/`
  r.http = `http://${r.host}:${port}/`
  r.key = hexToBytes(r.secret)
  r.self = getPublicKey(r.key)
  r.group = `only-on-${r.file.split(".")[0]}`
}

const nip11 = async r => {
  for (let i = 0; i < 100; i++) {
    try {
      return await fetchRelayInformation(r.url)
    } catch {}
    await sleep(100)
  }
  fail("the relay did not start")
}

const sign = (key, kind, tags = [], content = "") =>
  finalizeEvent({kind, tags, content, created_at: Math.floor(Date.now() / 1000)}, key)

// The relay's OK: "" when accepted, else the message (nostr-tools rejects with it).
const publish = async (conn, event) => {
  try {
    await conn.publish(event)
    return ""
  } catch (error) {
    return error.message || "refused without a message"
  }
}

const query = (conn, filter) =>
  new Promise((resolve, reject) => {
    const events = []
    let done = false
    const sub = conn.subscribe([filter], {
      onevent: e => events.push(e),
      oneose: () => {
        done = true
        resolve(events)
        sub.close()
      },
      onclose: reason => done || reject(new Error(`closed: ${reason}`)),
    })
  })

const dTags = events => events.map(e => e.tags.find(t => t[0] === "d")?.[1]).sort()

// A NIP-86 call signed (NIP-98) by `key`, sent to the relay's own URL.
const manage = async (r, key, method, params) => {
  const payload = {method, params}
  const authorization = await getToken(r.http, "POST", e => finalizeEvent(e, key), true, payload)
  const res = await fetch(r.http, {
    method: "POST",
    headers: {"Content-Type": "application/nostr+json+rpc", Authorization: authorization},
    body: JSON.stringify(payload),
  })
  return {status: res.status, body: await res.json()}
}

const user = generateSecretKey()
const userPk = getPublicKey(user)
const conns = []

try {
  step("each relay's own NIP-11 by its host")
  for (const r of relays) {
    const info = await nip11(r)
    check(info.name === r.name, `${r.host}: name ${JSON.stringify(info.name)}`)
    check(info.self === r.self, `${r.host}: self is its own key (${info.self})`)
    if (r.icon) check(info.icon === r.icon, `${r.host}: icon ${info.icon}`)
    if (r.pubkey) check(info.pubkey === r.pubkey, `${r.host}: pubkey ${info.pubkey}`)
    check(info.supported_nips.includes(29), `${r.host}: NIP-29 advertised`)
  }
  const other = await fetch(`http://unknown.example.com:${port}/`, {headers: {Accept: "application/nostr+json"}})
  check(other.status === 421, `a host no relay serves: ${other.status}`)

  for (const r of relays) {
    r.conn = await Relay.connect(r.url)
    // Bounds for a hung relay on a loaded machine, not speed requirements (an EOSE
    // that times out would end a query early, a publish fail).
    r.conn.baseEoseTimeout = 30000
    r.conn.publishTimeout = 30000
    conns.push(r.conn)
  }

  step("a key that has not joined a zooid relay is refused, then joins it (NIP-43)")
  for (const r of relays) {
    const refused = await publish(r.conn, sign(user, 9007, [["h", "mine"]]))
    check(refused.startsWith("restricted: not a member of this relay yet"), `${r.host}: ${refused}`)
    const joined = await publish(r.conn, sign(user, 28934, [["claim", ""]]))
    check(joined === "", `${r.host}: join: ${joined}`)
  }

  step("admin_create_only (zooid's default): a member's 9007 is refused, the relay key's accepted")
  for (const r of relays) {
    const refused = await publish(r.conn, sign(user, 9007, [["h", "mine"]]))
    check(refused === "restricted: only relay admins can create groups", `${r.host}: ${refused}`)
    const created = await publish(r.conn, sign(r.key, 9007, [["h", r.group]]))
    check(created === "", `${r.host}: the relay key's 9007: ${created}`)
  }

  step("each relay lists its own groups only")
  for (const r of relays) {
    const listed = dTags(await query(r.conn, {kinds: [39000]}))
    check(JSON.stringify(listed) === JSON.stringify([r.group]), `${r.host} lists ${JSON.stringify(listed)}`)
  }

  step("auto_join: the join request makes a member on localhost, waits on my-relay.example.com")
  for (const r of relays) {
    const asked = await publish(r.conn, sign(user, 9021, [["h", r.group]]))
    check(asked === "", `${r.host}: 9021: ${asked}`)
    const lists = await query(r.conn, {kinds: [39002], "#d": [r.group]})
    check(lists.length === 1, `${r.host}: one 39002, got ${lists.length}`)
    const member = lists[0].tags.some(t => t[0] === "p" && t[1] === userPk)
    check(member === r.autoJoin, `${r.host}: member after 9021 is ${member}, auto_join ${r.autoJoin}`)
  }

  step("NIP-86 over NIP-98 on my-relay.example.com: a non-admin is refused, the relay key bans")
  const mine = relays[1]
  const forbidden = await manage(mine, user, "banpubkey", [userPk, "spam"])
  check(forbidden.status === 403, `a non-admin's banpubkey: ${forbidden.status} ${JSON.stringify(forbidden.body)}`)
  const stranger = await manage(relays[0], mine.key, "banpubkey", [userPk, "spam"])
  check(stranger.status === 403, `another relay's key on localhost: ${stranger.status} ${JSON.stringify(stranger.body)}`)
  const banned = await manage(mine, mine.key, "banpubkey", [userPk, "spam"])
  check(banned.status === 200 && banned.body.result === true, `banpubkey: ${banned.status} ${JSON.stringify(banned.body)}`)
  const listed = await manage(mine, mine.key, "listbannedpubkeys", [])
  check(
    listed.status === 200 && listed.body.result.some(b => b.pubkey === userPk),
    `listbannedpubkeys: ${JSON.stringify(listed.body)}`,
  )

  step("the banned key's event is refused there, and still accepted on localhost")
  const refused = await publish(mine.conn, sign(user, 9, [["h", mine.group]], "after the ban"))
  check(refused === "blocked: this pubkey is banned from the relay", `banned on ${mine.host}: ${refused}`)
  const elsewhere = await publish(relays[0].conn, sign(user, 9, [["h", relays[0].group]], "still welcome"))
  check(elsewhere === "", `on localhost: ${elsewhere}`)

  console.log("ok: zooid's two virtual relays, through nostr-tools")
} catch (error) {
  if (!process.exitCode) {
    console.error(error)
    process.exitCode = 1
  }
} finally {
  for (const c of conns) c.close()
  stop()
  setTimeout(() => process.exit(), 200)
}
