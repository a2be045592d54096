// What every signed-in page shares: the Goldwire client, the header (connection state,
// theme, notification bell) and /v2/sync calls to the gateway with the user's token.
import { Goldwire } from "goldwire"; // the import map points at <gateway>/sdk/goldwire.js

export const config = JSON.parse(document.getElementById("config").textContent);
const $ = (sel) => document.querySelector(sel);

const HEADER = `
  <a class="brand" href="/">Goldleaves · Documents</a>
  <span id="conn" class="conn" data-state="connecting">connecting</span>
  <span class="spacer"></span>
  <button id="theme" type="button">Dark theme</button>
  <button id="bell" type="button" title="Notifications">Inbox <span class="count" data-unread="0">0</span></button>
  <span id="who"></span>
  <form method="post" action="/logout"><button type="submit">Switch user</button></form>`;
document.querySelector("header").innerHTML = HEADER;

// --- tokens: minted by this app, used for the socket and for /v2/sync ----------------
let current = null; // {token, until}
export async function token() {
  if (!current || current.until - Date.now() < 60_000) {
    const res = await fetch("/api/token");
    if (!res.ok) throw new Error(`token: ${res.status}`);
    const { token, ttl } = await res.json();
    current = { token, until: Date.now() + ttl * 1000 };
  }
  return current.token;
}

/** Call the gateway's sync API (cross-origin: the gateway must allow this page's origin). */
export async function sync(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${await token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`${config.gateway}/v2/sync${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(`${method} ${path}: ${res.status}`), { status: res.status, data });
  return data;
}

export const client = new Goldwire(config.ws, { token });

// --- header --------------------------------------------------------------------------
const conn = $("#conn");
client.on("state", ({ newState }) => {
  conn.dataset.state = newState;
  conn.textContent = newState === "connected" ? "live" : newState;
});

// Preferences: one theme for every tab and device of the user, versioned by the server.
let prefs = { values: {}, version: 0 };
function applyPrefs(next) {
  if (next.version < prefs.version) return; // an older push arriving late
  prefs = next;
  document.documentElement.dataset.theme = prefs.values.theme === "dark" ? "dark" : "light";
  $("#theme").textContent = prefs.values.theme === "dark" ? "Light theme" : "Dark theme";
}
client.on("preferences", applyPrefs);
$("#theme").addEventListener("click", async () => {
  const theme = prefs.values.theme === "dark" ? "light" : "dark";
  try {
    const { version } = await client.setPreferences({ ...prefs.values, theme }, prefs.version);
    applyPrefs({ values: { ...prefs.values, theme }, version });
  } catch (err) {
    if (err.code === "conflict") applyPrefs(await sync("/preferences")); // someone wrote first
    else throw err;
  }
});

// Notifications: the inbox lives in Goldwire; the bell shows the unread count.
const bell = $("#bell"), inbox = $("#inbox");
let notes = { items: [], unread: 0 };
function renderBell() {
  const count = bell.querySelector(".count");
  count.dataset.unread = notes.unread;
  count.textContent = notes.unread;
  inbox.querySelector("ul").replaceChildren(...notes.items.map((n) => {
    const li = document.createElement("li");
    li.className = n.read ? "" : "unread";
    const a = document.createElement("a");
    a.href = n.data.link ?? "#";
    a.textContent = n.data.title;
    const body = document.createElement("div");
    body.className = "muted";
    body.textContent = n.data.body;
    li.append(a, body);
    return li;
  }));
}
async function loadInbox() {
  notes = await sync("/notifications?limit=20");
  renderBell();
}
client.on("notification", () => void loadInbox()); // the count comes from the inbox itself
bell.addEventListener("click", async () => {
  inbox.hidden = !inbox.hidden;
  if (!inbox.hidden && notes.unread > 0) {
    const { unread } = await sync("/notifications/ack", { method: "POST", body: { upto: notes.items[0].id } });
    notes = { ...notes, unread };
    setTimeout(loadInbox, 0);
  }
});

$("#who").textContent = config.user.name;

/** Connect, then load preferences and the inbox (after connecting, so no push is missed). */
export async function start() {
  await client.connect();
  const [p] = await Promise.all([sync("/preferences"), loadInbox()]);
  applyPrefs(p);
}
