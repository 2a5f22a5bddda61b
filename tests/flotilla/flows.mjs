// Flotilla's space flows, through the @welshman libraries Flotilla is built on, against
// `highwater relay`: join the space (28934 without and with an invite), be listed in
// 13534, see the rooms, create a room as an admin after NIP-86 `supportedmethods`
// (NIP-98), post a protected message, reconnect and read it back with the room query
// Flotilla sends, and store the user's group list (10009). Exits non-zero on the first
// failed step.
import {spawn} from "node:child_process"
import {mkdtempSync, rmSync} from "node:fs"
import {tmpdir} from "node:os"
import {join} from "node:path"
import {createServer} from "node:net"
import WebSocket from "ws"
import {Pool, publishOne, pull, request, PublishStatus, AuthStatus, SocketStatus} from "@welshman/net"
import {makeEvent, makeHttpAuth, makeHttpAuthHeader, getPubkey, makeSecret} from "@welshman/util"
import {Nip01Signer} from "@welshman/signer"

globalThis.WebSocket ??= WebSocket

const bin = process.env.HIGHWATER_BIN ?? new URL("../../target/debug/highwater", import.meta.url).pathname
const fail = message => {
  console.error(`FAIL: ${message}`)
  process.exitCode = 1
  throw new Error(message)
}
const check = (ok, message) => ok || fail(message)
const step = name => console.log(`step: ${name}`)

const freePort = () =>
  new Promise(resolve => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const {port} = server.address()
      server.close(() => resolve(port))
    })
  })

const relaySecret = makeSecret()
const admin = Nip01Signer.fromSecret(makeSecret())
const alice = Nip01Signer.fromSecret(makeSecret())
const bob = Nip01Signer.fromSecret(makeSecret())
const adminPk = await admin.getPubkey()
const alicePk = await alice.getPubkey()
const bobPk = await bob.getPubkey()

const port = await freePort()
const url = `ws://127.0.0.1:${port}/`
const http = `http://127.0.0.1:${port}/`
const dir = mkdtempSync(join(tmpdir(), "highwater-flotilla-"))
const relay = spawn(
  bin,
  ["relay", "--db", join(dir, "db"), "--create", "--bind", `127.0.0.1:${port}`, "--relay-admin", adminPk],
  {env: {...process.env, HIGHWATER_RELAY_SECRET_KEY: relaySecret}, stdio: ["ignore", "inherit", "inherit"]},
)
const stop = () => {
  relay.kill("SIGTERM")
  rmSync(dir, {recursive: true, force: true})
}

const sleep = ms => new Promise(r => setTimeout(r, ms))

const nip11 = async () => {
  for (let i = 0; i < 100; i++) {
    try {
      const res = await fetch(http, {headers: {Accept: "application/nostr+json"}})
      if (res.ok) return res.json()
    } catch {}
    await sleep(100)
  }
  fail("the relay did not start")
}

// Flotilla's attemptRelayAccess: open, authenticate (NIP-42), publish the join request.
const connect = async (pool, signer) => {
  const socket = pool.get(url)
  socket.attemptToOpen()
  for (let i = 0; i < 50 && socket.status !== SocketStatus.Open; i++) await sleep(50)
  check(socket.status === SocketStatus.Open, "socket open")
  for (let i = 0; i < 50 && !socket.auth.challenge; i++) await sleep(50)
  await socket.auth.attemptAuth(e => signer.sign(e))
  check(socket.auth.status === AuthStatus.Ok, `authenticated (${socket.auth.status} ${socket.auth.details ?? ""})`)
  return socket
}

const publishAs = async (pool, signer, kind, tags = [], content = "") => {
  const event = await signer.sign(makeEvent(kind, {content, tags}))
  const result = await publishOne({event, relay: url, context: {pool}, timeout: 5000})
  return {event, result}
}

const query = (pool, filters) => request({relays: [url], filters, autoClose: true, context: {pool}})

// Flotilla's shouldIgnoreError / attemptRelayAccess on the OK message.
const joinError = result => {
  if (result.status === PublishStatus.Success) return ""
  const error = result.detail ?? ""
  if (error.includes("missing group (`h`) tag")) return ""
  return error.includes("invite code") ? "join request rejected" : error.replace(/^\w+: /, "")
}

try {
  step("NIP-11: self, name, description, NIP-43")
  const info = await nip11()
  check(info.self === getPubkey(relaySecret), "self is the relay key")
  check(typeof info.name === "string" && typeof info.description === "string", "name and description")
  check(info.supported_nips.includes(43), "NIP-43 advertised")

  step("alice joins the space (28934 without an invite)")
  const pa = new Pool()
  await connect(pa, alice)
  const joined = await publishAs(pa, alice, 28934, [["claim", ""]])
  check(joinError(joined.result) === "", `join: ${JSON.stringify(joined.result)}`)

  step("alice is listed in 13534")
  const lists = await query(pa, [{kinds: [13534]}])
  check(lists.length === 1, `one member list, got ${lists.length}`)
  check(lists[0].tags.some(t => t[0] === "member" && t[1] === alicePk), "alice listed")
  const adds = await query(pa, [{kinds: [8000], "#p": [alicePk], limit: 1}])
  check(adds.length === 1, "alice's 8000")

  step("admin: supportedmethods over NIP-86 with NIP-98")
  const body = JSON.stringify({method: "supportedmethods", params: []})
  const auth = await admin.sign(await makeHttpAuth(http, "POST", body))
  const rpc = await fetch(http, {
    method: "POST",
    headers: {"Content-Type": "application/nostr+json+rpc", Authorization: makeHttpAuthHeader(auth)},
    body,
  })
  const methods = await rpc.json()
  check(rpc.ok && Array.isArray(methods.result), `supportedmethods: ${JSON.stringify(methods)}`)

  step("admin creates a room")
  const pm = new Pool()
  await connect(pm, admin)
  const h = "lobby"
  const created = await publishAs(pm, admin, 9007, [["h", h], ["-"]])
  check(created.result.status === PublishStatus.Success, `create: ${created.result.detail}`)
  const meta = await publishAs(pm, admin, 9002, [["h", h], ["name", "Lobby"], ["-"]])
  check(meta.result.status === PublishStatus.Success, `metadata: ${meta.result.detail}`)

  step("alice sees the room (39000) once")
  const rooms = await query(pa, [{kinds: [39000, 39001, 39002]}])
  const lobby = rooms.filter(e => e.kind === 39000 && e.tags.some(t => t[0] === "d" && t[1] === h))
  check(lobby.length === 1, `one 39000 for the room, got ${lobby.length}`)
  const seen = new Set(rooms.map(e => `${e.kind}:${e.tags.find(t => t[0] === "d")?.[1]}`))
  check(seen.size === rooms.length, "one version per addressable event")

  step("alice joins the room and posts a protected message")
  const roomJoin = await publishAs(pa, alice, 9021, [["h", h], ["-"]])
  check(roomJoin.result.status === PublishStatus.Success, `room join: ${roomJoin.result.detail}`)
  const posted = await publishAs(pa, alice, 9, [["h", h], ["-"]], "hello from flotilla's flow")
  check(posted.result.status === PublishStatus.Success, `post: ${posted.result.detail}`)

  step("alice stores her group list (10009) on the space")
  const list = await publishAs(pa, alice, 10009, [["group", h, url]])
  check(list.result.status === PublishStatus.Success, `10009: ${list.result.detail}`)

  step("reconnect and read the message back (Flotilla's room and space queries)")
  pa.clear?.()
  const pr = new Pool()
  await connect(pr, alice)
  const now = Math.floor(Date.now() / 1000)
  const room = await query(pr, [{kinds: [9, 1111, 9000, 9001], "#h": [h], since: now - 3600, until: now + 60, limit: 100}])
  check(room.some(e => e.id === posted.event.id), "the message in the room query")
  const space = await query(pr, [{kinds: [9], limit: 100}])
  check(space.some(e => e.id === posted.event.id), "the message in the space query")
  // Flotilla's syncSpace pulls with negentropy (NIP-77) from a relay that lists 77.
  const pulled = await pull({relays: [url], filters: [{kinds: [9], limit: 100}], events: [], context: {pool: pr}})
  check(pulled.some(e => e.id === posted.event.id), "the message pulled over negentropy")
  const groups = await query(pr, [{kinds: [10009], authors: [alicePk]}])
  check(groups.length === 1 && groups[0].id === list.event.id, "the group list read back")

  step("bob joins with an invite (28935 from the admin)")
  const invites = await query(pm, [{kinds: [28935], limit: 1}])
  const claim = invites[0]?.tags.find(t => t[0] === "claim")?.[1]
  check(claim, "an invite claim")
  const pb = new Pool()
  await connect(pb, bob)
  const bobJoin = await publishAs(pb, bob, 28934, [["claim", claim]])
  check(joinError(bobJoin.result) === "", `bob's join: ${JSON.stringify(bobJoin.result)}`)
  const after = await query(pb, [{kinds: [13534]}])
  check(after.length === 1 && after[0].tags.some(t => t[0] === "member" && t[1] === bobPk), "bob listed")

  console.log("ok: every Flotilla flow passed")
} catch (error) {
  if (!process.exitCode) {
    console.error(error)
    process.exitCode = 1
  }
} finally {
  stop()
  setTimeout(() => process.exit(), 200)
}
