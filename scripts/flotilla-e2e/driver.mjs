// Drives the Flotilla app (a local build of coracle-social/flotilla) in the system's
// headless Chromium against a fresh `highwater relay`, one screenshot per step, and
// writes the result (steps, the relay's WebSocket frames around the reload) to OUT.
//
//   node driver.mjs --build FLOTILLA/build --highwater BIN --out DIR [--chromium PATH]
//     [--flotilla-commit C] [--highwater-commit C]
//
// The steps: open the app, log in with Flotilla's own key login (a fresh test key), add
// the space ws://127.0.0.1:PORT through Flotilla's "Join a Space" (NIP-43 28934), see the
// rooms (one made by a script beforehand), create a room as the relay admin (the test key
// is `--relay-admin`), post a message, reload the page and look for the message, and check
// that the relay holds the user's group list (10009). The WebSocket frames between the
// page and the relay are recorded through the Chrome DevTools protocol (frames.jsonl).
import {spawn} from "node:child_process"
import http from "node:http"
import {createServer} from "node:net"
import {mkdtempSync, rmSync, writeFileSync, mkdirSync, createWriteStream, existsSync} from "node:fs"
import {readFile, stat} from "node:fs/promises"
import {tmpdir} from "node:os"
import {join, extname, resolve} from "node:path"
import {parseArgs} from "node:util"
import puppeteer from "puppeteer-core"
import WebSocket from "ws"
import {generateSecretKey, getPublicKey, finalizeEvent, nip19} from "nostr-tools"
import {bytesToHex} from "nostr-tools/utils"

const {values: args} = parseArgs({
  options: {
    build: {type: "string"},
    highwater: {type: "string"},
    out: {type: "string"},
    chromium: {type: "string", default: "/usr/bin/chromium"},
    "flotilla-commit": {type: "string", default: "unknown"},
    "highwater-commit": {type: "string", default: "unknown"},
  },
})
for (const name of ["build", "highwater", "out"]) {
  if (!args[name]) throw new Error(`--${name} is required`)
}
const build = resolve(args.build)
const out = resolve(args.out)
mkdirSync(out, {recursive: true})

const sleep = ms => new Promise(r => setTimeout(r, ms))
const freePort = () =>
  new Promise(done => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const {port} = server.address()
      server.close(() => done(port))
    })
  })

// Keys: the test user (also the relay admin) and the relay's own key.
const userSecret = generateSecretKey()
const userPk = getPublicKey(userSecret)
const relaySecret = bytesToHex(generateSecretKey())

// A fresh relay.
const port = await freePort()
const relayUrl = `ws://127.0.0.1:${port}`
const dir = mkdtempSync(join(tmpdir(), "highwater-flotilla-e2e-"))
const relayLog = createWriteStream(join(dir, "relay.log"))
const relay = spawn(
  args.highwater,
  ["relay", "--db", join(dir, "db"), "--create", "--bind", `127.0.0.1:${port}`, "--relay-admin", userPk, "-v"],
  {env: {...process.env, HIGHWATER_RELAY_SECRET_KEY: relaySecret}, stdio: ["ignore", "pipe", "pipe"]},
)
relay.stdout.pipe(relayLog)
relay.stderr.pipe(relayLog)

// The Flotilla build, served as a static site with its fallback page (adapter-static).
const types = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".css": "text/css",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
  ".webmanifest": "application/manifest+json",
  ".woff2": "font/woff2",
  ".wasm": "application/wasm",
}
const appPort = await freePort()
const app = `http://127.0.0.1:${appPort}`
const server = http
  .createServer(async (req, res) => {
    let path = join(build, decodeURIComponent(new URL(req.url, app).pathname))
    try {
      if (!path.startsWith(build) || !(await stat(path)).isFile()) throw new Error()
    } catch {
      path = join(build, "index.html")
    }
    res.writeHead(200, {"Content-Type": types[extname(path)] ?? "application/octet-stream"})
    res.end(await readFile(path))
  })
  .listen(appPort, "127.0.0.1")

// A small NIP-01/NIP-42 client for the script's own setup and checks.
const connect = () =>
  new Promise((done, fail) => {
    const ws = new WebSocket(relayUrl)
    const waiting = new Map()
    let authed = null
    ws.on("message", data => {
      const msg = JSON.parse(data)
      if (msg[0] === "AUTH") {
        const auth = finalizeEvent(
          {kind: 22242, created_at: Math.floor(Date.now() / 1000), tags: [["relay", relayUrl], ["challenge", msg[1]]], content: ""},
          userSecret,
        )
        ws.send(JSON.stringify(["AUTH", auth]))
        authed = auth.id
      } else if (msg[0] === "OK" && msg[1] === authed) {
        done(client)
      } else {
        waiting.get(msg[1])?.(msg)
      }
    })
    ws.on("error", fail)
    const client = {
      publish: event =>
        new Promise(ok => {
          waiting.set(event.id, ok)
          ws.send(JSON.stringify(["EVENT", event]))
        }),
      query: filter =>
        new Promise(ok => {
          const id = Math.random().toString(36).slice(2)
          const events = []
          waiting.set(id, msg => {
            if (msg[0] === "EVENT") events.push(msg[2])
            else ok({events, end: msg})
          })
          ws.send(JSON.stringify(["REQ", id, filter]))
        }),
      close: () => ws.close(),
    }
  })
const sign = (kind, tags, content = "") =>
  finalizeEvent({kind, created_at: Math.floor(Date.now() / 1000), tags, content}, userSecret)

for (let i = 0; ; i++) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, {headers: {Accept: "application/nostr+json"}})
    if (res.ok) break
  } catch {}
  if (i > 100) throw new Error("the relay did not start")
  await sleep(100)
}

// A room made by a script before the app opens ("Lobby"), with one message in it.
const setup = await connect()
const lobby = "lobby"
const scripted = [
  sign(9007, [["h", lobby], ["-"]]),
  sign(9002, [["h", lobby], ["name", "Lobby"], ["about", "made by the e2e script"], ["-"]]),
  sign(9, [["h", lobby], ["-"]], "a message posted by the script before the app opened"),
]
for (const event of scripted) {
  const ok = await setup.publish(event)
  if (!ok[2]) throw new Error(`setup ${event.kind}: ${ok[3]}`)
}

// The browser, with every WebSocket frame to or from the relay recorded.
const browser = await puppeteer.launch({
  executablePath: args.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
})
const browserVersion = await browser.version()
const frames = []
const consoleLines = []
const started = Date.now()
const stamp = () => ((Date.now() - started) / 1000).toFixed(2)
let marker = "start"
let sockets = 0

// Every WebSocket frame between a page and the relay, through the DevTools protocol.
const record = async (page, label) => {
  const relaySockets = new Map()
  const cdp = await page.createCDPSession()
  await cdp.send("Network.enable")
  const push = (requestId, dir, data) =>
    frames.push({t: stamp(), step: marker, page: label, socket: relaySockets.get(requestId), dir, data})
  cdp.on("Network.webSocketCreated", ({requestId, url}) => {
    if (url.includes(`127.0.0.1:${port}`)) {
      relaySockets.set(requestId, ++sockets)
      push(requestId, "open", url)
    }
  })
  const onFrame = dir => ({requestId, response}) => {
    if (relaySockets.has(requestId)) push(requestId, dir, response.payloadData)
  }
  cdp.on("Network.webSocketFrameSent", onFrame("sent"))
  cdp.on("Network.webSocketFrameReceived", onFrame("received"))
  cdp.on("Network.webSocketClosed", ({requestId}) => {
    if (relaySockets.has(requestId)) push(requestId, "closed")
  })
  page.on("console", m => consoleLines.push(`${stamp()} [${label}/${marker}] ${m.type()}: ${m.text().slice(0, 300)}`))
  page.on("pageerror", e => consoleLines.push(`${stamp()} [${label}/${marker}] pageerror: ${String(e).slice(0, 300)}`))
}

const newPage = async (context, label) => {
  const page = await context.newPage()
  await page.setViewport({width: 1000, height: 700})
  await record(page, label)
  return page
}
let page = await newPage(browser.defaultBrowserContext(), "app")

// Helpers: text on the page, clicks on the element that shows a text.
const text = () => page.evaluate(() => document.body.innerText)
const waitText = async (wanted, timeout = 15000) => {
  const end = Date.now() + timeout
  while (Date.now() < end) {
    if ((await text()).includes(wanted)) return true
    await sleep(250)
  }
  return false
}
const clickText = async (wanted, {selector = "button, a, [role=button], label, li, div", timeout = 15000} = {}) => {
  const end = Date.now() + timeout
  while (Date.now() < end) {
    const handle = await page.evaluateHandle(
      (wanted, selector) => {
        const visible = el => {
          const r = el.getBoundingClientRect()
          return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== "hidden"
        }
        const matches = [...document.querySelectorAll(selector)].filter(
          el => el.innerText?.trim().includes(wanted) && visible(el) && !el.disabled,
        )
        // The innermost element showing the text, then its clickable ancestor.
        const inner = matches.filter(el => !matches.some(other => other !== el && el.contains(other)))
        const target = inner[inner.length - 1]
        return target?.closest("button, a, [role=button]") ?? target ?? null
      },
      wanted,
      selector,
    )
    const element = handle.asElement()
    if (element) {
      await element.click()
      return true
    }
    await sleep(250)
  }
  throw new Error(`no clickable "${wanted}"`)
}

const steps = []
let shot = 0
const step = async (name, fn) => {
  marker = name
  const entry = {name, ok: false, note: "", screenshot: ""}
  steps.push(entry)
  console.log(`step: ${name}`)
  try {
    entry.note = (await fn()) ?? ""
    entry.ok = true
  } catch (error) {
    entry.note = String(error?.message ?? error)
    console.log(`  FAILED: ${entry.note}`)
  }
  shot += 1
  entry.screenshot = `${String(shot).padStart(2, "0")}-${name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/-$/, "")}.png`
  await sleep(1000) // let dialogs finish fading
  await page.screenshot({path: join(out, entry.screenshot)}).catch(() => (entry.screenshot = ""))
  return entry.ok
}

const message = `hello from Flotilla in Chromium ${new Date().toISOString()}`
const roomName = "e2e"
const encoded = encodeURIComponent(relayUrl)
let roomPath = ""
let messageId = ""

// Flotilla's own key login: "Log in" → "Log in with Key" → the nsec.
const logIn = async () => {
  await clickText("Log in")
  await clickText("Log in with Key")
  await page.waitForSelector("input[placeholder='nsec1...']", {timeout: 10000})
  await page.type("input[placeholder='nsec1...']", nip19.nsecEncode(userSecret))
  await clickText("Log in", {selector: "button[type=submit]"})
  if (!(await waitText("Successfully logged in"))) throw new Error("no log-in confirmation")
}

// The relay's answer, through the script's own connection.
const relayQuery = async filter => {
  const check = await connect()
  try {
    return (await check.query(filter)).events
  } finally {
    check.close()
  }
}

// Waits until no frame has come from the relay for `ms` (at most 30 s); returns the
// seconds of quiet before it returns.
const quiet = async ms => {
  const end = Date.now() + 30000
  for (;;) {
    const last = frames.findLast(f => f.dir === "received")
    const since = last ? Date.now() - started - Number(last.t) * 1000 : ms
    if (since >= ms || Date.now() > end) return (since / 1000).toFixed(1)
    await sleep(200)
  }
}

// What Flotilla's IndexedDB (database flotilla-9gl, its `events` and `tracker` tables)
// holds for an event: whether it is there, signed, and from which relays.
const stored = id =>
  page
    .evaluate(
      id =>
        new Promise(done => {
          const open = indexedDB.open("flotilla-9gl")
          open.onerror = () => done("no database")
          open.onsuccess = () => {
            const db = open.result
            const names = [...db.objectStoreNames]
            if (!names.includes("events") || !names.includes("tracker")) return done(`tables ${names}`)
            const tx = db.transaction(["events", "tracker"])
            const event = tx.objectStore("events").get(id)
            const tracked = tx.objectStore("tracker").get(id)
            tx.oncomplete = () => {
              const e = event.result
              const t = tracked.result
              done(
                `${e ? `the event (${e.sig ? "signed" : "without a signature"})` : "no event"}, ` +
                  `${t ? `tracked on ${JSON.stringify(t.relays)}` : "not in the tracker"}`,
              )
              db.close()
            }
          }
        }),
      id,
    )
    .catch(error => `unreadable: ${error.message}`)

try {
  await step("Open the app", async () => {
    await page.goto(`${app}/`, {waitUntil: "networkidle2", timeout: 60000}).catch(() => {})
    if (!(await waitText("Log in"))) throw new Error("no log-in screen")
  })

  await step("Log in with a key", async () => {
    await logIn()
    return `Flotilla's "Log in with Key", test key ${nip19.npubEncode(userPk)}`
  })

  await step("Join the space", async () => {
    await page.goto(`${app}/join?r=${encoded}`, {waitUntil: "networkidle2", timeout: 30000}).catch(() => {})
    await waitText("Join a Space")
    await clickText("Join Space", {selector: "button[type=submit]"})
    // Flotilla asks to confirm when the relay did not ask for AUTH before the join.
    const confirm = await waitText("Continue?", 4000)
    if (confirm) await clickText("Confirm", {selector: "button"})
    if (!(await waitText("Welcome to the space", 15000))) throw new Error("no welcome toast")
    const members = await relayQuery({kinds: [13534]})
    if (!members.some(e => e.tags.some(t => t[0] === "member" && t[1] === userPk))) {
      throw new Error("the relay's 13534 does not list the user")
    }
    return `"Join Space" with ws://127.0.0.1:PORT (NIP-43 28934); ${confirm ? "confirmed the open-space prompt; " : ""}listed in the relay's 13534`
  })

  await step("See the rooms", async () => {
    if (!(await waitText("Lobby", 20000))) {
      throw new Error("the script's room (Lobby) is not in the space's room list")
    }
    return "the room the script made (Lobby) is listed"
  })

  await step("Create a room", async () => {
    await clickText("Create room", {timeout: 15000})
    await waitText("Create a Room")
    const input = await page.waitForSelector("form input[type=text], form input:not([type])", {timeout: 5000})
    await input.type(roomName)
    await clickText("Create Room", {selector: "button[type=submit]"})
    const end = Date.now() + 20000
    for (; Date.now() < end; await sleep(250)) {
      const path = new URL(page.url()).pathname
      if (/^\/spaces\/[^/]+\/[^/]+$/.test(path) && !/\/(chat|recent|threads|calendar|goals)$/.test(path)) {
        roomPath = path
        break
      }
    }
    if (!roomPath) throw new Error(`not taken to the new room (at ${page.url()})`)
    const h = decodeURIComponent(roomPath.split("/").pop())
    await sleep(1500)
    const rooms = await relayQuery({kinds: [39000], "#d": [h]})
    if (!rooms.some(e => e.tags.some(t => t[0] === "name" && t[1] === roomName))) {
      throw new Error(`the relay has no 39000 named ${roomName} for ${h}`)
    }
    return `as the relay admin (NIP-86 supportedmethods): room "${roomName}" (h ${h}), the relay's 39000 names it`
  })

  await step("Post a message", async () => {
    if (!roomPath) {
      // Without a room of its own, the script's room.
      roomPath = `/spaces/${encoded}/${lobby}`
      await page.goto(`${app}${roomPath}`, {waitUntil: "networkidle2", timeout: 30000}).catch(() => {})
    }
    if (await waitText("Join Room", 3000)) {
      await clickText("Join Room")
      await sleep(2000)
    }
    const editor = await page.waitForSelector("[contenteditable=true]", {timeout: 10000})
    await editor.click()
    await page.keyboard.type(message)
    // Send it as a user does after typing: with nothing arriving from the relay for a
    // few seconds (Flotilla writes its IndexedDB in batches, at most one each 3 s).
    const waited = await quiet(4000)
    await page.keyboard.press("Enter")
    if (!(await waitText(message, 10000))) throw new Error("the message is not shown after posting")
    await sleep(3000)
    const event = (await relayQuery({kinds: [9], limit: 50})).find(e => e.content === message)
    if (!event) throw new Error("the relay does not return the message")
    messageId = event.id
    return `in ${decodeURIComponent(roomPath)}, sent after ${waited} s without frames from the relay; the relay returns it (${event.id.slice(0, 12)}…, tags ${JSON.stringify(event.tags)})`
  })

  await step("Reload and see the message", async () => {
    const before = await stored(messageId)
    await page.reload({waitUntil: "networkidle2", timeout: 60000}).catch(() => {})
    const shown = await waitText(message, 20000)
    const after = await stored(messageId)
    const cache = `Flotilla's IndexedDB before the reload: ${before}; after: ${after}`
    if (!shown) throw new Error(`the message is not shown after the reload (${cache})`)
    return `shown after the reload (${cache})`
  })

  await step("Reload a second time", async () => {
    // What the first reload's answers left in Flotilla's IndexedDB is what this one shows.
    await page.reload({waitUntil: "networkidle2", timeout: 60000}).catch(() => {})
    const shown = await waitText(message, 20000)
    const cache = `Flotilla's IndexedDB: ${await stored(messageId)}`
    if (!shown) throw new Error(`the message is not shown after a second reload (${cache})`)
    return `shown (${cache})`
  })

  await step("A new browser profile sees the message", async () => {
    // Nothing cached: what the page shows comes from the relay's answers alone.
    const context = await browser.createBrowserContext()
    page = await newPage(context, "fresh")
    await page.goto(`${app}/`, {waitUntil: "networkidle2", timeout: 60000}).catch(() => {})
    await logIn()
    await page.goto(`${app}${roomPath}`, {waitUntil: "networkidle2", timeout: 60000}).catch(() => {})
    if (!(await waitText(message, 20000))) throw new Error("the message is not shown in a new profile")
    return "logged in again in an empty profile and opened the room: the message is shown"
  })

  await step("Group list stored", async () => {
    const lists = await relayQuery({kinds: [10009], authors: [userPk]})
    if (lists.length === 0) throw new Error("no 10009 from the user on the relay")
    return `the relay holds the user's 10009: ${JSON.stringify(lists[0].tags)}`
  })
} finally {
  const cut = data => (data && data.length > 1500 ? `${data.slice(0, 1500)}…` : data)
  writeFileSync(
    join(out, "frames.jsonl"),
    frames.map(f => JSON.stringify({...f, data: cut(f.data)})).join("\n") + "\n",
  )
  writeFileSync(join(dir, "console.log"), consoleLines.join("\n") + "\n")
  writeFileSync(join(out, "RESULT.md"), result())
  console.log(`frames: ${frames.length}; console in ${join(dir, "console.log")}, relay log in ${join(dir, "relay.log")}`)
  await browser.close().catch(() => {})
  server.close()
  setup.close()
  relay.kill("SIGTERM")
  if (!process.env.KEEP_TMP) rmSync(dir, {recursive: true, force: true})
  const failed = steps.filter(s => !s.ok).length
  console.log(failed ? `${failed} step(s) failed` : "every step passed")
  process.exitCode = failed ? 1 : 0
  setTimeout(() => process.exit(), 500)
}

// What the reload step found, from its note and the frames.
function reloadText(answer) {
  const reload = steps.find(s => s.name === "Reload and see the message")
  if (!reload) return "The run did not reach the reload."
  if (reload.ok) return `The message was shown after the reload: ${reload.note}.`
  const held = answer.withMessage.length > 0
  return [
    `The message was **not** shown after the reload, ${held ? "although the relay's answers to the room's queries held it (above)" : "and the relay's answers to the room's queries did not hold it"}.`,
    `${reload.note.replace(/^the message is not shown after the reload \((.*)\)$/, "$1")}.`,
    held && /without a signature|not in the tracker/.test(reload.note)
      ? "An unsigned copy the tracker does not place on the relay is what Flotilla's cache bug leaves (README.md, \"The message missing after a reload\"): the room feed skips the copy and ignores the relay's answers as duplicates of it."
      : "",
  ]
    .filter(Boolean)
    .join(" ")
}

// RESULT.md: the run, its steps and what the frames say about the room's messages.
function result() {
  const parsed = frames
    .filter(f => f.dir === "sent" || f.dir === "received")
    .map(f => {
      try {
        return {...f, msg: JSON.parse(f.data)}
      } catch {
        return {...f, msg: []}
      }
    })
  const negErr = parsed.filter(f => f.msg[0] === "NEG-ERR")
  const h = roomPath ? decodeURIComponent(roomPath.split("/").pop()) : lobby
  // After the reload and in the new profile: the room queries and whether their answers held the message.
  const answers = ["Reload and see the message", "Reload a second time", "A new browser profile sees the message"].map(name => {
    const during = parsed.filter(f => f.step === name)
    const subs = during
      .filter(f => f.dir === "sent" && f.msg[0] === "REQ" && f.msg.slice(2).some(x => x?.["#h"]?.includes(h)))
      .map(f => f.msg[1])
    const withMessage = new Set(
      during.filter(f => f.msg[0] === "EVENT" && f.dir === "received" && f.msg[2]?.id === messageId).map(f => f.msg[1]),
    )
    const firstReq = during.find(f => f.dir === "sent" && f.msg[0] === "REQ" && subs.includes(f.msg[1]))
    return {name, subs: [...new Set(subs)], withMessage: [...withMessage], firstReq}
  })
  const lines = [
    "# Flotilla against highwater: the last run",
    "",
    "Written by `scripts/flotilla-e2e.sh` (driver `scripts/flotilla-e2e/driver.mjs`); the",
    "investigation of the reload report and what was fixed is in [README.md](README.md).",
    "",
    `- Date: ${new Date().toISOString()}`,
    `- Flotilla: coracle-social/flotilla ${args["flotilla-commit"]} (built with \`vite build\`, served as static files)`,
    `- highwater: ${args["highwater-commit"]}`,
    `- Browser: ${browserVersion}, headless, 1000×700`,
    `- Relay: a fresh \`highwater relay --create\`, the test key as \`--relay-admin\``,
    "",
    "| # | Step | Result | Screenshot | Notes |",
    "|---|------|--------|------------|-------|",
    ...steps.map(
      (s, i) =>
        `| ${i + 1} | ${s.name} | ${s.ok ? "pass" : "**FAIL**"} | ${s.screenshot ? `[${s.screenshot}](${s.screenshot})` : ""} | ${s.note.replace(/\|/g, "\\|").replace(/\n/g, " ")} |`,
    ),
    "",
    `${steps.filter(s => s.ok).length} of ${steps.length} steps passed.`,
    "",
    "## The room's messages in the frames",
    "",
    `The page's WebSocket frames to and from the relay are in [frames.jsonl](frames.jsonl)`,
    `(${frames.length} frames, each with the step it belongs to; long ones cut at 1,500 characters).`,
    `The message posted: \`${messageId || "(none)"}\` in room \`${h}\`.`,
    "",
    ...answers.flatMap(a => [
      `- ${a.name}: the page sent ${a.subs.length} REQ(s) for \`#h: ["${h}"]\`` +
        (a.firstReq ? ` (first: \`${JSON.stringify(a.firstReq.msg.slice(2))}\`)` : "") +
        `; the relay's answer held the message in ${a.withMessage.length} of them.`,
    ]),
    `- \`NEG-ERR\` answers from the relay: ${negErr.length}` +
      (negErr.length ? ` (first: \`${JSON.stringify(negErr[0].msg)}\`)` : "") +
      ".",
    "",
    "## The reload",
    "",
    reloadText(answers[0]),
    "",
  ]
  return lines.join("\n")
}
