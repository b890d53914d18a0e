// shopd chat page: joins /chat/{room} over a WebSocket, shows the room's
// lines as text, sends what you type. No libraries, no inline code (the
// page's Content-Security-Policy forbids it), no other origin.
//
// It speaks the subprotocol shopd.chat.v1: every line comes with its
// offset, and after a restart or a dropped network the page resumes with
// the token of its welcome from the last offset it has, so it shows every
// line once, in order, under the same name. Its own lines show at once as
// "you"; lines the server never got (sent as the connection broke) are
// sent again after a complete resume.
"use strict";

(() => {
  /** Lines kept on the page; older ones are removed. */
  const MAX_LINES = 500;
  /** First and longest wait before reconnecting, in milliseconds. */
  const BACKOFF_FIRST = 1000;
  const BACKOFF_MAX = 15000;
  /** What the close codes mean, in words. */
  const CLOSE_WORDS = {
    1000: "the chat was closed",
    1001: "server restarting",
    1002: "protocol error",
    1003: "binary messages are not accepted",
    1005: "closed without a reason",
    1006: "connection lost",
    1007: "text was not valid UTF-8",
    1008: "you were reading too slowly",
    1009: "message too long",
    1011: "server error",
    1013: "server full, try again later",
  };
  /** Closes after which the page reconnects by itself. */
  const RECONNECT_ON = new Set([1001, 1006]);
  /** The subprotocol with offsets and resume. */
  const SUBPROTOCOL = "shopd.chat.v1";

  const $ = (id) => document.getElementById(id);
  const state = $("state");
  const log = $("log");
  const input = $("say-input");
  const reconnectButton = $("reconnect");

  let room = null;
  let socket = null;
  let backoff = BACKOFF_FIRST;
  let timer = null;
  let joinedBefore = false;
  /** From the last welcome: the token, the epoch; the last offset shown. */
  let resume = null;
  let lastOffset = 0;
  /** Own lines sent and not yet acknowledged, oldest first. */
  let unacked = [];
  /** While catching up after a welcome: the offset that ends it. */
  let catchUpTo = 0;
  let catchUpComplete = true;

  function setState(kind, text) {
    state.dataset.state = kind;
    state.textContent = text;
  }

  function closeWords(code) {
    return CLOSE_WORDS[code] || "closed";
  }

  /** Appends one entry to the log; every text goes in as text. */
  function append(kind, who, text) {
    const stick = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const item = document.createElement("li");
    item.className = kind;
    if (who !== null) {
      const name = document.createElement("span");
      name.className = "who";
      name.textContent = who;
      item.append(name);
    }
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    item.append(body);
    log.append(item);
    while (log.children.length > MAX_LINES) {
      log.firstElementChild.remove();
    }
    if (stick) {
      log.scrollTop = log.scrollHeight;
    }
  }

  /** `name :: text`, split at the first ` :: ` (names never hold it). */
  function showLine(line) {
    const at = line.indexOf(" :: ");
    if (at < 0) {
      append("line", null, line);
    } else {
      append("line", line.slice(0, at), line.slice(at + 4));
    }
  }

  /** Lines the server never got are sent again, once caught up. */
  function resendUnacked() {
    for (const text of unacked) {
      socket.send(text);
    }
  }

  function caughtUp() {
    if (catchUpTo === null) {
      return;
    }
    catchUpTo = null;
    if (catchUpComplete) {
      resendUnacked();
    } else if (unacked.length > 0) {
      append("note", null, "Some of your last lines may not have reached the others.");
      unacked = [];
    }
  }

  function onWelcome(frame) {
    const resumed = resume !== null;
    const complete = frame.resumed === true;
    const sameEpoch = resumed && resume.epoch === frame.epoch;
    resume = { token: frame.token, epoch: frame.epoch };
    backoff = BACKOFF_FIRST;
    setState("open", "Connected");
    if (!joinedBefore) {
      append("note", null, "Joined. Your lines show here as “you”; the others see a name the server picked for you.");
    } else if (!resumed) {
      append("note", null, "Reconnected. The others see you under a new name; lines sent while you were away are not shown.");
    } else if (complete) {
      append("note", null, "Reconnected. Nothing was missed: lines sent while you were away follow.");
    } else {
      append("note", null, "Reconnected. The server could not give every line sent while you were away.");
    }
    joinedBefore = true;
    catchUpComplete = complete;
    // A new member starts at the room's end; offsets of another epoch are
    // not comparable, so those start over from its end too.
    if (!resumed || !sameEpoch) {
      lastOffset = frame.offset;
    }
    catchUpTo = frame.offset;
    if (lastOffset >= catchUpTo) {
      caughtUp();
    }
    if (document.activeElement === document.body) {
      input.focus();
    }
  }

  /** A `line` or `sent` frame: shown once, in offset order. */
  function onNumbered(frame) {
    if (frame.offset <= lastOffset) {
      return;
    }
    lastOffset = frame.offset;
    if (frame.type === "sent") {
      // Already shown as "you" when it was typed.
      unacked.shift();
    } else {
      append("line", frame.from, frame.text);
    }
    if (catchUpTo !== null && lastOffset >= catchUpTo) {
      caughtUp();
    }
  }

  function onFrame(ws, data) {
    if (ws.protocol !== SUBPROTOCOL) {
      showLine(data);
      return;
    }
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.type === "welcome") {
      ws.welcomed = true;
      onWelcome(frame);
    } else if (frame.type === "line" || frame.type === "sent") {
      onNumbered(frame);
    }
  }

  function connect() {
    clearTimeout(timer);
    timer = null;
    reconnectButton.hidden = true;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${scheme}//${location.host}/chat/${encodeURIComponent(room)}`;
    if (resume !== null) {
      const query = new URLSearchParams({ resume: resume.token, since: String(lastOffset), epoch: resume.epoch });
      url += `?${query}`;
    }
    setState("connecting", "Connecting…");
    const ws = new WebSocket(url, [SUBPROTOCOL]);
    ws.welcomed = false;
    socket = ws;
    catchUpTo = null;
    ws.addEventListener("open", () => {
      if (ws.protocol !== SUBPROTOCOL) {
        // A server without the subprotocol: plain lines, no resume.
        backoff = BACKOFF_FIRST;
        setState("open", "Connected");
        append("note", null, joinedBefore
          ? "Reconnected. The others see you under a new name; lines sent while you were away are not shown."
          : "Joined. Your lines show here as “you”; the others see a name the server picked for you.");
        joinedBefore = true;
      }
    });
    ws.addEventListener("message", (event) => {
      if (typeof event.data === "string") {
        onFrame(ws, event.data);
      }
    });
    ws.addEventListener("close", (event) => {
      if (socket !== ws) {
        return;
      }
      socket = null;
      if (event.code === 1008 && !ws.welcomed && resume !== null) {
        // The token was refused (expired, or the server's secret changed):
        // join again as a new member.
        resume = null;
        lastOffset = 0;
        unacked = [];
        timer = setTimeout(connect, 0);
        return;
      }
      // 1008 has several causes; the server's reason names the one.
      const words = event.code === 1008 && event.reason ? event.reason : closeWords(event.code);
      if (RECONNECT_ON.has(event.code)) {
        const wait = backoff + Math.floor(Math.random() * backoff * 0.3);
        backoff = Math.min(backoff * 2, BACKOFF_MAX);
        setState("waiting", `Disconnected (${event.code}): ${words}. Reconnecting in ${Math.ceil(wait / 1000)} s…`);
        timer = setTimeout(connect, wait);
      } else {
        setState("closed", `Disconnected (${event.code}): ${words}.`);
        reconnectButton.hidden = false;
      }
      append("note", null, `Disconnected (${event.code}): ${words}.`);
    });
  }

  function send(event) {
    event.preventDefault();
    const text = input.value;
    if (text === "") {
      return;
    }
    if (socket === null || socket.readyState !== WebSocket.OPEN) {
      append("note", null, "Not sent: not connected. Your text is still in the field.");
      return;
    }
    socket.send(text);
    if (socket.protocol === SUBPROTOCOL) {
      unacked.push(text);
    }
    append("line mine", "you", text);
    input.value = "";
  }

  function openRoom(name) {
    room = name;
    $("room-title").textContent = name;
    document.title = `${name} · shopd chat`;
    $("chat").hidden = false;
    $("say-form").addEventListener("submit", send);
    reconnectButton.addEventListener("click", () => {
      backoff = BACKOFF_FIRST;
      connect();
      input.focus();
    });
    connect();
  }

  function askForRoom() {
    setState("idle", "Not connected");
    $("pick").hidden = false;
    const field = $("room-input");
    field.focus();
    $("pick-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const name = field.value;
      if (name !== "") {
        location.assign(`/chat?room=${encodeURIComponent(name)}`);
      }
    });
  }

  const asked = new URLSearchParams(location.search).get("room");
  if (asked) {
    openRoom(asked);
  } else {
    askForRoom();
  }
})();
