"""Keys for the ranker, and a word when its kernel is gone: a small anywidget inside the form.

ipywidgets has no keyboard events, so the ranker carries this widget (anywidget: a widget written as
one ES module, no build step, its JupyterLab extension installed with the package). In the browser it

* listens, before JupyterLab does (a capturing listener on the window), to the keys pressed while the
  focus is inside the ranker's form (click the form first). Plain keys go to Python as
  ``{"key": ...}`` and stop there: they never reach JupyterLab's notebook shortcuts (A and B insert
  cells, D D deletes one). Keys with Ctrl, Alt or Meta, and Tab, pass on untouched;
* asks the kernel whether it is alive at each key and click in the form (a ping that Python answers).
  With no answer within two seconds (the kernel was restarted or killed, so the buttons on screen
  belong to nobody), it says so in the form: run the cell again, nothing saved is lost.

What a key does is decided in Python (`rlhf_lab.labels.ranker.Ranker.press`), with the same code as
the buttons, so tests drive it without a browser.
"""
from __future__ import annotations

import anywidget
import traitlets

_ESM = r"""
function render({ model, el }) {
  const line = document.createElement("div");
  line.className = "rlhf-keys";
  line.style.cssText = "font-size: var(--jp-ui-font-size0, 11px); color: var(--jp-ui-font-color2, #666); margin-top: 4px;";
  const gone = document.createElement("div");
  gone.className = "rlhf-gone";
  gone.style.cssText = "display: none; margin-top: 6px; padding: 6px 10px; border-radius: 4px; font-weight: bold; " +
    "color: var(--jp-error-color1, #b00020); border: 1px solid var(--jp-error-color1, #b00020);";
  gone.textContent = "This ranker's kernel is gone (restarted or stopped): clicks and keys here do nothing. " +
    "Run the ranker cell again: it picks up where the saved labels end; nothing saved is lost.";
  el.append(line, gone);
  const showHint = () => { line.textContent = model.get("hint"); };
  showHint();
  model.on("change:hint", showHint);

  let waiting = null;
  const box = () => el.closest(".rlhf-ranker");
  const ping = () => {
    if (waiting !== null) return;
    const id = Math.random().toString(36).slice(2);
    waiting = { id, timer: setTimeout(() => { gone.style.display = "block"; }, 2000) };
    try { model.send({ ping: id }); } catch (err) { gone.style.display = "block"; }
  };
  model.on("msg:custom", (msg) => {
    if (waiting !== null && msg.pong === waiting.id) {
      clearTimeout(waiting.timer);
      waiting = null;
      gone.style.display = "none";
    }
  });
  const onKey = (event) => {
    const form = box();
    if (!form || !form.contains(document.activeElement)) return;
    if (event.ctrlKey || event.altKey || event.metaKey || event.key === "Tab") return;
    if (["Shift", "Control", "Alt", "Meta", "CapsLock"].includes(event.key)) return;
    event.preventDefault();
    event.stopPropagation();
    event.stopImmediatePropagation();
    if (event.repeat) return;
    try { model.send({ key: event.key }); } catch (err) { gone.style.display = "block"; }
    ping();
  };
  const onDown = (event) => {
    const form = box();
    if (!form || !form.contains(event.target)) return;
    if (!form.hasAttribute("tabindex")) form.setAttribute("tabindex", "0");
    ping();
  };
  const prepare = () => {
    const form = box();
    if (form) {
      form.setAttribute("tabindex", "0");
      form.setAttribute("data-lm-suppress-shortcuts", "true");
    }
  };
  requestAnimationFrame(prepare);
  window.addEventListener("keydown", onKey, true);
  window.addEventListener("mousedown", onDown, true);
  return () => {
    window.removeEventListener("keydown", onKey, true);
    window.removeEventListener("mousedown", onDown, true);
  };
}
export default { render };
"""


class KeyBridge(anywidget.AnyWidget):
    """Sends the keys pressed in the ranker's form to ``on_key(key)``; answers the form's pings."""

    _esm = _ESM
    hint = traitlets.Unicode("").tag(sync=True)

    def __init__(self, on_key, hint: str = ""):
        super().__init__(hint=hint)
        self._on_key = on_key
        self.on_msg(self._message)

    def _message(self, _widget, content, _buffers) -> None:
        if "ping" in content:
            self.send({"pong": content["ping"]})
        if "key" in content:
            self._on_key(str(content["key"]))
