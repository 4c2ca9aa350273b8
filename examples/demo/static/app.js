// The demo page talks to the JSON API served by the same skitai process.
async function refresh() {
  const status = await (await fetch("/api/status")).json();
  document.getElementById("status").textContent = JSON.stringify(status, null, 2);
  const notes = await (await fetch("/api/notes")).json();
  const list = document.getElementById("notes");
  list.replaceChildren(...notes.map((n) => {
    const li = document.createElement("li");
    li.textContent = n.text;
    return li;
  }));
}

document.getElementById("add").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = event.target.elements.text;
  await fetch("/api/notes", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({text: input.value}),
  });
  input.value = "";
  refresh();
});

refresh();
