/**
 * Statechart diagrams of a compiled workflow, for people: Mermaid text for Markdown and the web
 * console, Graphviz DOT, and SVG rendered from the DOT by Graphviz in WebAssembly (no browser).
 *
 * Both formats draw the same picture, built once by `diagramOf`: one box per state (name, label,
 * reminders), an edge per transition labelled with what causes it (event and who may send it,
 * timer, multi-unit join or its timeout), its condition printed back as source, and the effects
 * a reader cares about (escalate, reassign, extend).
 */
import { instance, type Viz } from '@viz-js/viz';
import type { ActionSpec, CompiledDefinition, GuardSpec, MultiSpec, StateConfig, TimerSpec, TransitionConfig, WhoSpec } from './compile.ts';
import { printExpr } from './print.ts';

const FONT = 'Noto Sans CJK SC, sans-serif';

type EdgeKind = 'event' | 'timer' | 'join' | 'timeout' | 'always';

interface DiagramNode {
  readonly id: string;
  readonly name: string;
  readonly label?: string;
  readonly final: boolean;
  /** Reminders: drawn as notes, since they do not move the case. */
  readonly notes: readonly string[];
}

interface DiagramEdge {
  readonly from: string;
  readonly to: string;
  readonly kind: EdgeKind;
  readonly lines: readonly string[];
}

interface Diagram {
  readonly title: string;
  readonly start: { readonly id: string; readonly who: string };
  readonly nodes: readonly DiagramNode[];
  readonly edges: readonly DiagramEdge[];
}

/**
 * Draws a definition as a Mermaid `stateDiagram-v2`. State ids become `s0`, `s1`, … and names
 * and labels are shown through `state "…" as sN`, with Mermaid's special characters written as
 * `#…;` entity codes.
 * @example
 * const { model } = checkSource(source, '五单服务.wf');
 * if (model) writeFileSync('五单服务.mmd', toMermaid(compile(model)));
 */
export function toMermaid(def: CompiledDefinition): string {
  const d = diagramOf(def);
  const text = (lines: readonly string[]): string => lines.map(mermaidText).join('<br/>');
  const out = ['stateDiagram-v2'];
  for (const n of d.nodes) out.push(`  state "${text(nodeLines(n))}" as ${n.id}`);
  out.push(`  [*] --> ${d.start.id} : ${text([`start by ${d.start.who}`])}`);
  for (const e of d.edges) out.push(`  ${e.from} --> ${e.to} : ${text(e.lines)}`);
  for (const n of d.nodes) {
    if (n.final) out.push(`  ${n.id} --> [*]`);
    if (n.notes.length > 0) out.push(`  note right of ${n.id} : ${text(n.notes)}`);
  }
  const finals = d.nodes.filter((n) => n.final).map((n) => n.id);
  if (finals.length > 0) {
    out.push('  classDef finalState font-weight:bold,stroke-width:3px');
    out.push(`  class ${finals.join(',')} finalState`);
  }
  return `${out.join('\n')}\n`;
}

/**
 * Draws a definition as a Graphviz DOT digraph, left to right: rounded boxes for states, a
 * double circle for final states, a point for the start, dashed edges for timers.
 * @example
 * writeFileSync('五单服务.dot', toDot(definition)); // then: dot -Tpng 五单服务.dot
 */
export function toDot(def: CompiledDefinition): string {
  const d = diagramOf(def);
  const out = [
    `digraph ${dotString(d.title)} {`,
    `  graph [rankdir=LR, fontname=${dotString(FONT)}, label=${dotString(d.title)}, labelloc=t, nodesep=0.4, ranksep=0.6];`,
    `  node [shape=box, style=rounded, fontname=${dotString(FONT)}, fontsize=12, margin="0.15,0.08"];`,
    `  edge [fontname=${dotString(FONT)}, fontsize=10];`,
    '  __start [shape=point, width=0.15, label=""];',
  ];
  for (const n of d.nodes) {
    const rows = [`<b>${htmlText(n.name)}</b>`];
    if (n.label !== undefined && n.label !== n.name) rows.push(htmlText(n.label));
    for (const note of n.notes) rows.push(`<font point-size="9" color="#666666"><i>${htmlText(note)}</i></font>`);
    const shape = n.final ? ', shape=doublecircle, style=bold' : '';
    out.push(`  ${n.id} [label=<${rows.join('<br/>')}>${shape}];`);
  }
  out.push(`  __start -> ${d.start.id} [label=${dotString(`start by ${d.start.who}`)}];`);
  for (const e of d.edges) {
    const style = e.kind === 'timer' ? ', style=dashed'
      : e.kind === 'timeout' ? ', style=dashed, color="#b03a2e", fontcolor="#b03a2e"'
        : e.kind === 'join' ? ', style=bold' : '';
    out.push(`  ${e.from} -> ${e.to} [label=${dotLabel(e.lines)}${style}];`);
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}

let vizInstance: Promise<Viz> | undefined;

/**
 * Renders the DOT diagram to an SVG document with `@viz-js/viz`. The WebAssembly Graphviz
 * instance is created on first use and reused.
 * @example
 * writeFileSync('五单服务.svg', await toSvg(definition));
 */
export async function toSvg(def: CompiledDefinition): Promise<string> {
  vizInstance ??= instance().catch((e: unknown) => {
    vizInstance = undefined;
    throw e;
  });
  const viz = await vizInstance;
  const result = viz.render(toDot(def), { format: 'svg' });
  if (result.status === 'failure') {
    throw new Error(`Graphviz could not draw workflow ${def.name}: ${result.errors.map((e) => e.message).join('; ')}`);
  }
  return result.output;
}

// ---- the picture, shared by both formats ------------------------------------------------

function diagramOf(def: CompiledDefinition): Diagram {
  const ids = new Map<string, string>();
  const idOf = (state: string): string => {
    let id = ids.get(state);
    if (id === undefined) {
      id = `s${ids.size}`;
      ids.set(state, id);
    }
    return id;
  };
  // Start first so it reads s0; the rest in declaration order.
  idOf(def.start.state);
  for (const name of Object.keys(def.states)) idOf(name);

  const nodes: DiagramNode[] = [];
  const edges: DiagramEdge[] = [];
  for (const [name, spec] of Object.entries(def.states)) {
    const config: StateConfig = def.machine.states[name] ?? {};
    const from = idOf(name);
    const timers = new Map<string, TimerSpec>(spec.timers.map((t) => [t.delay, t]));
    const notes: string[] = [];
    const edge = (t: TransitionConfig, kind: EdgeKind, lines: readonly string[]): void => {
      edges.push({ from, to: idOf(t.target ?? name), kind, lines: [...lines, ...effects(def, t), ...(t.target === undefined ? ['(stays)'] : [])] });
    };

    for (const [event, transitions] of Object.entries(config.on ?? {})) {
      // A multi-unit step's own event only records who has acted; its edges are the join's.
      if (spec.multi?.event === event) continue;
      const ev = spec.events[event];
      const head = ev?.label === undefined || ev.label === event ? event : `${event} "${ev.label}"`;
      const who = ev === undefined ? [] : [`by ${printWhoList(ev.who)}`];
      forEachWithCondition(def, transitions, (t, cond) => edge(t, 'event', [head, ...who, ...cond]));
    }
    const multi = spec.multi;
    const joinDeadline = spec.timers.find((t) => t.kind === 'join-deadline');
    if (multi !== undefined) {
      const ev = spec.events[multi.event];
      const who = ev === undefined ? '' : ` by ${printWhoList(ev.who)}`;
      const within = joinDeadline?.duration === undefined ? '' : ` within ${printExpr(joinDeadline.duration)}`;
      const head = [`each ${multi.variable} in ${printExpr(multi.items)}`, `${multi.event}${who}`, `${printJoin(multi)}${within}`];
      forEachWithCondition(def, config.always ?? [], (t, cond) => edge(t, 'join', [...head, ...cond]));
    } else {
      forEachWithCondition(def, config.always ?? [], (t, cond) => edge(t, 'always', ['always', ...cond]));
    }
    for (const [delay, transitions] of Object.entries(config.after ?? {})) {
      const timer = timers.get(delay);
      const duration = timer?.duration === undefined ? '' : printExpr(timer.duration);
      if (timer?.kind === 'reminder') {
        for (const t of transitions) notes.push(...reminderNotes(def, t, timer));
      } else if (timer?.kind === 'join-deadline') {
        forEachWithCondition(def, transitions, (t, cond) => edge(t, 'timeout', [`timeout (${duration})`, ...cond]));
      } else {
        forEachWithCondition(def, transitions, (t, cond) => edge(t, 'timer', [duration === '' ? `after ${delay}` : `after ${duration}`, ...cond]));
      }
    }
    nodes.push({ id: from, name, ...(spec.label === undefined ? {} : { label: spec.label }), final: spec.final, notes });
  }
  return {
    title: def.label ?? def.name,
    start: { id: idOf(def.start.state), who: printWhoList(def.start.who) },
    nodes,
    edges,
  };
}

/**
 * Calls `f` with each transition and its condition lines: `require …` and `when …` from its
 * guard, or `otherwise` for an unguarded target after guarded ones.
 */
function forEachWithCondition(def: CompiledDefinition, transitions: readonly TransitionConfig[], f: (t: TransitionConfig, cond: string[]) => void): void {
  let guardedBefore = false;
  for (const t of transitions) {
    const g: GuardSpec | undefined = t.guard === undefined ? undefined : def.guards[t.guard];
    const cond: string[] = [];
    if (g !== undefined && g.kind !== 'joined') for (const r of g.requires) cond.push(`require ${printExpr(r)}`);
    const when = g !== undefined && g.kind !== 'instance' ? g.when : undefined;
    if (when !== undefined) {
      cond.push(`when ${printExpr(when)}`);
      guardedBefore = true;
    } else if (guardedBefore) {
      cond.push('otherwise');
    }
    f(t, cond);
  }
}

/** Effects worth seeing on an edge: they change who is responsible or when it is due. */
function effects(def: CompiledDefinition, t: TransitionConfig): string[] {
  const out: string[] = [];
  for (const name of t.actions) {
    const a: ActionSpec | undefined = def.actions[name];
    if (a?.kind === 'escalate') out.push('escalate');
    else if (a?.kind === 'reassign') out.push(`reassign to ${printExpr(a.to)}`);
    else if (a?.kind === 'extend') out.push(`extend ${printExpr(a.by)}`);
  }
  return out;
}

function reminderNotes(def: CompiledDefinition, t: TransitionConfig, timer: TimerSpec): string[] {
  const percent = timer.percent === undefined ? '' : ` at ${timer.percent}%`;
  const out: string[] = [];
  for (const name of t.actions) {
    const a = def.actions[name];
    if (a?.kind === 'notify') out.push(`remind ${printWho(a.who)}${percent} "${a.message}"`);
  }
  return out.length > 0 ? out : [`remind${percent}`];
}

function printJoin(m: MultiSpec): string {
  return m.join.kind === 'atLeast' ? `join at least ${printExpr(m.join.count)}` : `join ${m.join.kind}`;
}

function printWho(w: WhoSpec): string {
  switch (w.kind) {
    case 'role': return w.of === undefined ? w.role : `${w.role} of ${printExpr(w.of)}`;
    case 'person': return printExpr(w.expr);
    case 'anyone': return 'anyone';
  }
}

function printWhoList(who: readonly WhoSpec[]): string {
  return who.length === 0 ? 'anyone' : who.map(printWho).join(', ');
}

function nodeLines(n: DiagramNode): string[] {
  return n.label === undefined || n.label === n.name ? [n.name] : [n.name, n.label];
}

// ---- escaping -----------------------------------------------------------------------------

/**
 * Characters that end or confuse a Mermaid label, as the `#code;` entities Mermaid decodes when it
 * renders (`#quot;`, `#58;`). `#` and `;` are themselves escaped so text never forms an entity.
 */
const MERMAID_ESCAPES: Readonly<Record<string, string>> = {
  '"': '#quot;', ':': '#58;', ';': '#59;', '#': '#35;', '<': '#lt;', '>': '#gt;',
  '{': '#123;', '}': '#125;', '&': '#amp;', '`': '#96;', '[': '#91;', ']': '#93;', '|': '#124;',
};

function mermaidText(s: string): string {
  let out = '';
  for (const ch of s.replace(/[\r\n]+/g, ' ')) out += MERMAID_ESCAPES[ch] ?? ch;
  return out;
}

/** A DOT double-quoted string: only `"` and `\` are special; lines are joined with `\n`. */
function dotString(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\r?\n/g, '\\n')}"`;
}

function dotLabel(lines: readonly string[]): string {
  return dotString(lines.join('\n'));
}

/** Text inside a DOT HTML-like label. */
function htmlText(s: string): string {
  return s.replace(/[&<>"]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&quot;')).replace(/\r?\n/g, '<br/>');
}
