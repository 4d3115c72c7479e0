// The playground's code editor: CodeMirror 6 with the basic setup, one syntax per cellblock
// language (loaded on first use, so the first page load carries only the editor itself), and a
// run shortcut. The page (api/static/playground.js) falls back to a plain textarea without it.
import { basicSetup } from "codemirror";
import { EditorView, keymap } from "@codemirror/view";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { indentWithTab } from "@codemirror/commands";
import { StreamLanguage } from "@codemirror/language";

// cellblock language id -> how its syntax loads (ids: policies/languages/*.toml).
const SYNTAX = {
  bash: async () => StreamLanguage.define((await import("@codemirror/legacy-modes/mode/shell")).shell),
  c: async () => (await import("@codemirror/lang-cpp")).cpp(),
  cpp: async () => (await import("@codemirror/lang-cpp")).cpp(),
  go: async () => (await import("@codemirror/lang-go")).go(),
  java: async () => (await import("@codemirror/lang-java")).java(),
  javascript: async () => (await import("@codemirror/lang-javascript")).javascript(),
  kotlin: async () => StreamLanguage.define((await import("@codemirror/legacy-modes/mode/clike")).kotlin),
  lua: async () => StreamLanguage.define((await import("@codemirror/legacy-modes/mode/lua")).lua),
  php: async () => (await import("@codemirror/lang-php")).php(),
  python3: async () => (await import("@codemirror/lang-python")).python(),
  ruby: async () => StreamLanguage.define((await import("@codemirror/legacy-modes/mode/ruby")).ruby),
  rust: async () => (await import("@codemirror/lang-rust")).rust(),
  typescript: async () => (await import("@codemirror/lang-javascript")).javascript({ typescript: true }),
};

export function createEditor(parent, { doc = "", label = "Source code", onRun = () => {}, nonce = "" } = {}) {
  const syntax = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        basicSetup,
        // Mod-Enter runs: above the basic setup's own (which inserts a blank line).
        Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => (onRun(), true) }])),
        // Tab indents; Escape then Tab leaves the editor (CodeMirror's rule for keyboard users).
        keymap.of([indentWithTab]),
        syntax.of([]),
        EditorView.contentAttributes.of({ "aria-label": label }),
        EditorView.cspNonce.of(nonce),
      ],
    }),
  });
  let wanted = null;
  return {
    view,
    getValue: () => view.state.doc.toString(),
    setValue: (text) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }),
    focus: () => view.focus(),
    async setLanguage(id) {
      wanted = id;
      const load = SYNTAX[id];
      const ext = load ? await load() : [];
      if (wanted === id) view.dispatch({ effects: syntax.reconfigure(ext) });
    },
  };
}
