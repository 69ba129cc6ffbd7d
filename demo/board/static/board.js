// SyncroBoard's live board (demo): log in through the HTTP API, read the project's board, and keep
// it current from the WebSocket API. Plain browser JavaScript, no build step.
//
// Delivery on the socket is at least once, so every ticket.updated carries an eventId and the page
// drops the ones it has seen. Updates missed while the socket was down are caught up by reading
// the board again after each (re)subscribe.
"use strict";

const CONFIG = window.BOARD_CONFIG || { apiUrl: "http://127.0.0.1:3000", wsUrl: "ws://127.0.0.1:3001/dev" };
const KNOWN_STATUSES = ["todo", "in-progress", "done"];
const SEEN_LIMIT = 1000;

const state = {
  token: sessionStorage.getItem("sb.token"),
  projectId: null,
  tickets: new Map(),
  assignees: new Map(),
  seen: new Set(),
  socket: null,
  retryDelay: 1000,
  retryTimer: null,
};

const $ = (id) => document.getElementById(id);

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch (error) {
    return {};
  }
}

function projectsOf(token) {
  const value = claims(token).projects;
  if (Array.isArray(value)) return value.map(String);
  return typeof value === "string" ? value.split(",").filter(Boolean) : [];
}

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  const response = await fetch(CONFIG.apiUrl + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let payload = null;
  try {
    payload = await response.json();
  } catch (error) {
    payload = null;
  }
  return { status: response.status, ok: response.ok, body: payload };
}

function say(id, text) {
  $(id).textContent = text || "";
}

function setLive(stateName) {
  const badge = $("live");
  badge.dataset.state = stateName;
  badge.textContent = stateName;
}

// --- logging in and out ---------------------------------------------------------------------

async function logIn(event) {
  event.preventDefault();
  say("login-error", "");
  let answer;
  try {
    answer = await api("POST", "/auth/login", { username: $("username").value, password: $("password").value });
  } catch (error) {
    say("login-error", "The gateway cannot be reached.");
    return;
  }
  if (answer.status === 401) return say("login-error", "Wrong user name or password.");
  if (answer.status === 429) return say("login-error", "Too many attempts; wait a moment and try again.");
  if (!answer.ok || !answer.body || !answer.body.accessToken) {
    return say("login-error", `Login failed (${answer.status}).`);
  }
  state.token = answer.body.accessToken;
  sessionStorage.setItem("sb.token", state.token);
  await enter();
}

function logOut(message) {
  state.token = null;
  sessionStorage.removeItem("sb.token");
  closeSocket();
  $("board-view").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  say("who", "");
  say("login-error", message || "");
  setLive("offline");
}

async function enter() {
  const projects = projectsOf(state.token);
  const select = $("project");
  select.replaceChildren(...projects.map((id) => new Option(id, id)));
  $("login").hidden = true;
  $("board-view").hidden = false;
  $("logout").hidden = false;
  say("who", `signed in as ${claims(state.token).sub || "?"}`);
  if (!projects.length) return say("board-error", "Your account lists no project.");
  await switchProject(projects[0]);
}

// --- the board ------------------------------------------------------------------------------

async function switchProject(projectId) {
  if (state.projectId && state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify({ action: "unsubscribe", projectId: state.projectId }));
  }
  state.projectId = projectId;
  state.tickets.clear();
  await loadBoard();
  if (state.socket && state.socket.readyState === WebSocket.OPEN) subscribe();
  else connect();
}

async function loadBoard() {
  say("board-error", "");
  let answer;
  try {
    answer = await api("GET", `/projects/${encodeURIComponent(state.projectId)}/board`);
  } catch (error) {
    return say("board-error", "The gateway cannot be reached; retrying when the socket reconnects.");
  }
  if (answer.status === 401) return logOut("Your session has ended; log in again.");
  if (answer.status === 403) return say("board-error", "You cannot see this project.");
  if (!answer.ok || !answer.body) return say("board-error", `The board could not be read (${answer.status}).`);

  const board = answer.body;
  state.tickets = new Map((board.tickets || []).map((ticket) => [ticket.id, ticket]));
  state.assignees = new Map((board.assignments || []).map((item) => [item.ticketId, item.assignee]));
  const degraded = board.degraded || [];
  $("degraded").hidden = degraded.length === 0;
  say("degraded", degraded.length ? `Degraded: ${degraded.join(", ")} unavailable; showing what the gateway could read.` : "");
  document.body.dataset.degraded = degraded.join(",");
  render();
}

function statuses() {
  const extra = [...state.tickets.values()].map((t) => t.status).filter((s) => !KNOWN_STATUSES.includes(s));
  return [...KNOWN_STATUSES, ...new Set(extra)];
}

function render() {
  const board = $("board");
  board.replaceChildren(
    ...statuses().map((status) => {
      const column = document.createElement("div");
      column.className = "column";
      column.dataset.status = status;
      const title = document.createElement("h2");
      title.append(status, " ", Object.assign(document.createElement("span"), { className: "count" }));
      column.append(title);
      return column;
    }),
  );
  for (const ticket of state.tickets.values()) place(ticket, false);
  counts();
  document.body.dataset.ready = "true";
}

function card(ticket) {
  const element = document.createElement("article");
  element.className = "card";
  element.dataset.ticketId = ticket.id;
  const title = Object.assign(document.createElement("div"), { className: "title", textContent: ticket.title });
  const meta = Object.assign(document.createElement("div"), { className: "meta" });
  const who = Object.assign(document.createElement("span"), { textContent: state.assignees.get(ticket.id) || "unassigned" });
  const move = document.createElement("select");
  move.setAttribute("aria-label", `status of ${ticket.title}`);
  move.replaceChildren(...statuses().map((status) => new Option(status, status, false, status === ticket.status)));
  move.addEventListener("change", () => changeStatus(ticket.id, move.value));
  meta.append(`${ticket.id} · `, who, move);
  element.append(title, meta);
  return element;
}

function place(ticket, flash) {
  const old = document.querySelector(`.card[data-ticket-id="${CSS.escape(ticket.id)}"]`);
  if (old) old.remove();
  let column = document.querySelector(`.column[data-status="${CSS.escape(ticket.status)}"]`);
  if (!column) return render();
  const element = card(ticket);
  column.append(element);
  if (flash) {
    element.classList.add("flash");
    setTimeout(() => element.classList.remove("flash"), 1500);
  }
}

function counts() {
  for (const column of document.querySelectorAll(".column")) {
    column.querySelector(".count").textContent = `(${column.querySelectorAll(".card").length})`;
  }
}

async function changeStatus(ticketId, status) {
  const answer = await api("PATCH", `/tickets/${encodeURIComponent(ticketId)}`, { status });
  if (!answer.ok) {
    say("board-error", `The change was refused (${answer.status}).`);
    const ticket = state.tickets.get(ticketId);
    if (ticket) place(ticket, false);
  }
}

async function addTicket(event) {
  event.preventDefault();
  const title = $("new-title").value.trim();
  if (!title) return;
  const answer = await api("POST", "/tickets", { projectId: state.projectId, title });
  if (!answer.ok) return say("board-error", `The ticket could not be created (${answer.status}).`);
  $("new-title").value = "";
}

// --- the live socket ------------------------------------------------------------------------

function connect() {
  closeSocket();
  if (!state.token) return;
  setLive(state.retryDelay > 1000 ? "reconnecting" : "connecting");
  const socket = new WebSocket(`${CONFIG.wsUrl}?token=${encodeURIComponent(state.token)}`);
  state.socket = socket;
  socket.addEventListener("open", () => {
    state.retryDelay = 1000;
    subscribe();
  });
  socket.addEventListener("message", (event) => receive(event.data));
  socket.addEventListener("close", () => {
    if (state.socket !== socket || !state.token) return;
    state.socket = null;
    if (claims(state.token).exp && claims(state.token).exp * 1000 < Date.now()) {
      return logOut("Your session has ended; log in again.");
    }
    setLive("reconnecting");
    state.retryTimer = setTimeout(connect, state.retryDelay);
    state.retryDelay = Math.min(state.retryDelay * 2, 15000);
  });
}

function closeSocket() {
  clearTimeout(state.retryTimer);
  if (state.socket) {
    const socket = state.socket;
    state.socket = null;
    socket.close(1000, "leaving");
  }
}

function subscribe() {
  state.socket.send(JSON.stringify({ action: "subscribe", projectId: state.projectId }));
}

function receive(data) {
  let message;
  try {
    message = JSON.parse(data);
  } catch (error) {
    return;
  }
  if (message.type === "subscribed" && message.projectId === state.projectId) {
    setLive("live");
    loadBoard(); // catch up on whatever changed while the socket was away
  } else if (message.type === "ticket.updated") {
    applyUpdate(message);
  } else if (message.type === "error") {
    say("board-error", message.message || "The live connection reported an error.");
  }
}

function applyUpdate(message) {
  if (message.eventId) {
    if (state.seen.has(message.eventId)) return;
    state.seen.add(message.eventId);
    if (state.seen.size > SEEN_LIMIT) state.seen.delete(state.seen.values().next().value);
  }
  if (message.projectId !== state.projectId || !message.ticket || !message.ticket.id) return;
  const ticket = { ...(state.tickets.get(message.ticket.id) || {}), ...message.ticket };
  state.tickets.set(ticket.id, ticket);
  place(ticket, true);
  counts();
  document.body.dataset.lastEvent = message.eventId || "";
}

// --- start ----------------------------------------------------------------------------------

$("login").addEventListener("submit", logIn);
$("logout").addEventListener("click", () => logOut(""));
$("project").addEventListener("change", (event) => switchProject(event.target.value));
$("new-ticket").addEventListener("submit", addTicket);
if (state.token) enter();
