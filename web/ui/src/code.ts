// CodeMirror 6 editors for e.json and the element's JavaScript, with the element's problems as
// lint diagnostics at their line and column.

import { basicSetup } from "codemirror";
import { EditorState, Compartment, type Extension } from "@codemirror/state";
import { EditorView } from "@codemirror/view";
import { json } from "@codemirror/lang-json";
import { javascript } from "@codemirror/lang-javascript";
import { lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";

export interface Marker {
  line?: number;
  column?: number;
  message: string;
  code?: string;
  severity?: "error" | "warning" | "info";
}

function languageOf(name: string): Extension {
  if (name.endsWith(".json")) return json();
  if (name.endsWith(".js") || name.endsWith(".mjs") || name.endsWith(".cjs")) return javascript();
  return [];
}

export class CodeEditor {
  readonly view: EditorView;
  private readonly readOnly = new Compartment();
  private markers: Marker[] = [];

  constructor(
    parent: HTMLElement,
    readonly name: string,
    doc: string,
    opts: { readOnly: boolean; onChange?: () => void },
  ) {
    this.view = new EditorView({
      parent,
      state: EditorState.create({
        doc,
        extensions: [
          basicSetup,
          languageOf(name),
          lintGutter(),
          this.readOnly.of([EditorState.readOnly.of(opts.readOnly), EditorView.editable.of(!opts.readOnly)]),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) opts.onChange?.();
          }),
          EditorView.theme({ "&": { height: "100%" }, ".cm-scroller": { fontFamily: "var(--mono)" } }),
        ],
      }),
    });
  }

  get text(): string {
    return this.view.state.doc.toString();
  }

  // setText replaces the whole document (the e.json form writes the raw JSON through it).
  setText(text: string): void {
    if (text === this.text) return;
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: text } });
  }

  setReadOnly(ro: boolean): void {
    this.view.dispatch({ effects: this.readOnly.reconfigure([EditorState.readOnly.of(ro), EditorView.editable.of(!ro)]) });
  }

  // offset turns a 1-based line and column into a document position (clamped to the document).
  offset(line?: number, column?: number): number {
    const doc = this.view.state.doc;
    if (!line || line < 1) return 0;
    const l = doc.line(Math.min(line, doc.lines));
    return Math.min(l.from + Math.max((column ?? 1) - 1, 0), l.to);
  }

  setMarkers(markers: Marker[]): void {
    this.markers = markers;
    const doc = this.view.state.doc;
    const diags: Diagnostic[] = markers.map((m) => {
      const from = this.offset(m.line, m.column);
      const lineEnd = doc.lineAt(from).to;
      // Mark to the end of the token (or one character) so the squiggle shows.
      const rest = doc.sliceString(from, lineEnd);
      const tok = /^[\w$]+/.exec(rest)?.[0].length ?? 1;
      return {
        from,
        to: Math.min(from + Math.max(tok, 1), lineEnd > from ? lineEnd : from),
        severity: m.severity ?? "error",
        message: m.code ? `${m.message} (${m.code})` : m.message,
        source: m.code,
      };
    });
    this.view.dispatch(setDiagnostics(this.view.state, diags));
  }

  get markerCount(): number {
    return this.markers.length;
  }

  reveal(line?: number, column?: number): void {
    const pos = this.offset(line, column);
    this.view.dispatch({ selection: { anchor: pos }, effects: EditorView.scrollIntoView(pos, { y: "center" }) });
    this.view.focus();
  }

  destroy(): void {
    this.view.destroy();
  }
}
