// The playground's code editor: CodeMirror 6 with the basic setup, one syntax per cellblock
// language (loaded on first use, so the first page load carries only the editor itself), and a
// run shortcut. The page (api/static/playground.js) falls back to a plain textarea without it.
import { basicSetup } from "codemirror";
import { EditorView, keymap } from "@codemirror/view";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { indentWithTab } from "@codemirror/commands";
import { HighlightStyle, StreamLanguage, syntaxHighlighting } from "@codemirror/language";
import { tags as t } from "@lezer/highlight";

// The syntax's colours: CodeMirror's default ones, darkened where they fell short of a 4.5:1
// contrast on the editor's white (and its active line's tint), which tests/web checks (axe-core).
const COLOURS = HighlightStyle.define([
  { tag: t.meta, color: "#404740" },
  { tag: t.link, textDecoration: "underline" },
  { tag: t.heading, textDecoration: "underline", fontWeight: "bold" },
  { tag: t.emphasis, fontStyle: "italic" },
  { tag: t.strong, fontWeight: "bold" },
  { tag: t.strikethrough, textDecoration: "line-through" },
  { tag: t.keyword, color: "#770088" },
  { tag: [t.atom, t.bool, t.url, t.contentSeparator, t.labelName], color: "#1a1a99" },
  { tag: [t.literal, t.inserted], color: "#116644" },
  { tag: [t.string, t.deleted], color: "#a31515" },
  { tag: [t.regexp, t.escape, t.special(t.string)], color: "#a33a00" },
  { tag: t.definition(t.variableName), color: "#0000cc" },
  { tag: t.local(t.variableName), color: "#3300aa" },
  { tag: [t.typeName, t.namespace], color: "#006644" },
  { tag: t.className, color: "#0f5c6e" },
  { tag: [t.special(t.variableName), t.macroName], color: "#1f5266" },
  { tag: t.definition(t.propertyName), color: "#0000cc" },
  { tag: t.comment, color: "#7a4a00" },
  { tag: t.invalid, color: "#c00000" },
]);

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
        syntaxHighlighting(COLOURS),
        EditorView.lineWrapping, // a long line stays in view, on a phone too
        // Mod-Enter runs: above the basic setup's own (which inserts a blank line).
        Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => (onRun(), true) }])),
        // Tab indents; Escape then Tab leaves the editor (CodeMirror's rule for keyboard users).
        keymap.of([indentWithTab]),
        syntax.of([]),
        // tabindex: the content is focusable already (contenteditable); said so, checkers see it.
        EditorView.contentAttributes.of({ "aria-label": label, tabindex: "0" }),
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
