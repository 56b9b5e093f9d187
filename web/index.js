// The hub's front page: lists the rooms from GET /rooms every 2 s, each linked to its
// viewer at /view/ROOM. /rooms answers {"rooms":[{"name","members","fps","drops"}]}.

const REFRESH_MS = 2000;

const ui = {
  status: document.getElementById('status'),
  table: document.getElementById('rooms'),
  body: document.querySelector('#rooms tbody'),
  empty: document.getElementById('no-rooms'),
};

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

/** Shows the rooms of one /rooms answer. */
function show(rooms) {
  ui.body.replaceChildren();
  for (const r of rooms) {
    const row = ui.body.insertRow();
    const link = document.createElement('a');
    link.href = `/view/${encodeURIComponent(r.name)}`;
    link.textContent = r.name;
    row.insertCell().append(link);
    cell(row, String(r.members), 'num');
    cell(row, Number.isFinite(r.fps) ? r.fps.toFixed(1) : '–', 'num');
    cell(row, String(r.drops), 'num');
  }
  ui.table.hidden = rooms.length === 0;
  ui.empty.hidden = rooms.length > 0;
}

async function refresh() {
  try {
    const res = await fetch('/rooms', { cache: 'no-store' });
    if (!res.ok) throw new Error(`the hub answered ${res.status} ${res.statusText}`);
    const json = await res.json();
    if (!json || !Array.isArray(json.rooms)) throw new Error('the answer has no "rooms" list');
    show(json.rooms);
    const n = json.rooms.length;
    ui.status.textContent = `${n} room${n === 1 ? '' : 's'} · updated ${new Date().toLocaleTimeString()}`;
    ui.status.classList.remove('error');
  } catch (e) {
    ui.status.textContent = `Could not load the room list from /rooms (${e.message}); is the hub running? Trying again every ${REFRESH_MS / 1000} s.`;
    ui.status.classList.add('error');
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
