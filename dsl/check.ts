/**
 * The checker: names, types and the closed-loop proof. It turns a parsed document into a
 * `Model` the compiler can trust, and reports every problem it finds in one run.
 *
 * The closed-loop proof: every state is reachable from the start; every reachable non-final
 * state has a way out (an event someone may send, or a timer, that leads elsewhere); and from
 * every reachable state some final state can be reached. Loops such as 退单 are fine; traps are not.
 */
import type * as A from './ast.ts';
import { diag, sortDiagnostics, type Diagnostic } from './diagnostics.ts';
import { checkExpr, fieldTypes, resolveType, type ExprScope, type TableSignature } from './expr-check.ts';
import { checkRules } from './rules.ts';
import { parse } from './parse.ts';
import { T, TYPE_NAMES, showType, type FieldType, type Type } from './types.ts';

/** Reads an imported file: `from` is the path as written, `importer` the importing file's path. */
export type SourceLoader = (from: string, importer: string) => { readonly file: string; readonly source: string } | undefined;

export interface CheckOptions {
  /** How imports are read; without one, any import is reported as not found. */
  readonly load?: SourceLoader;
}

export interface ModelTable {
  readonly decl: A.RulesDecl;
  readonly signature: TableSignature;
  /** The file the table was declared in. */
  readonly file: string;
}

/** A checked workflow: everything the compiler needs, with names resolved. */
export interface Model {
  readonly name: string;
  readonly label?: string;
  readonly file: string;
  readonly roles: ReadonlyMap<string, { readonly label?: string }>;
  readonly types: ReadonlyMap<string, Type>;
  readonly caseFields: Readonly<Record<string, FieldType>>;
  readonly tables: ReadonlyMap<string, ModelTable>;
  readonly start: A.StartDecl;
  readonly states: ReadonlyMap<string, A.StateDecl>;
  /** Payload field types of each `on` clause, keyed by the clause node. */
  readonly payloads: ReadonlyMap<A.OnClause, Readonly<Record<string, FieldType>>>;
  /** `by`/`notify` names that are not roles but payload fields holding a person. */
  readonly persons: ReadonlySet<A.RoleWho>;
}

export interface CheckResult {
  /** Present when the document is a workflow with no errors. */
  readonly model?: Model;
  readonly diagnostics: readonly Diagnostic[];
}

/** Words that mean something already inside expressions and may not name a payload field. */
const BUILTIN_NAMES = new Set(['actor', 'submitter', 'unit', 'now', 'case']);

/**
 * Parses and checks one source file.
 * @example
 * const { model, diagnostics } = checkSource(source, 'workflows/五单服务.wf', { load });
 */
export function checkSource(source: string, file: string, options: CheckOptions = {}): CheckResult & { readonly document: A.Document } {
  const parsed = parse(source, file);
  const checked = check(parsed.document, options);
  const diagnostics = sortDiagnostics([...parsed.diagnostics, ...checked.diagnostics]);
  // A draft with syntax errors has no model, even when recovery left a tree the checker accepts.
  const ok = checked.model !== undefined && !diagnostics.some((d) => d.severity === 'error');
  return ok ? { document: parsed.document, model: checked.model, diagnostics } : { document: parsed.document, diagnostics };
}

/** Checks a parsed document. Never throws; a failure inside the checker is reported as WF0901. */
export function check(doc: A.Document, options: CheckOptions = {}): CheckResult {
  try {
    const c = new Checker(doc, options, [doc.file]);
    const model = c.run();
    const diagnostics = sortDiagnostics(c.out.map((d) => (d.file === undefined ? { ...d, file: doc.file } : d)));
    return model !== undefined && !diagnostics.some((d) => d.severity === 'error') ? { model, diagnostics } : { diagnostics };
  } catch (e) {
    return { diagnostics: [{ ...diag('WF0901', doc.span, `The checker failed: ${e instanceof Error ? e.message : String(e)}`, 'This is a bug in the checker; please report it with the file.'), file: doc.file }] };
  }
}

class Checker {
  readonly out: Diagnostic[] = [];
  private readonly roles = new Map<string, { label?: string }>();
  private readonly types = new Map<string, Type>();
  private readonly tables = new Map<string, ModelTable>();
  private readonly states = new Map<string, A.StateDecl>();
  private readonly payloads = new Map<A.OnClause, Record<string, FieldType>>();
  private readonly persons = new Set<A.RoleWho>();
  private caseFields: Record<string, FieldType> = {};

  constructor(private readonly doc: A.Document, private readonly options: CheckOptions, private readonly importChain: readonly string[]) {}

  private err(code: Parameters<typeof diag>[0], span: A.Span, message: string, hint?: string): void {
    this.out.push(diag(code, span, message, hint));
  }

  run(): Model | undefined {
    const decls = this.doc.decls;
    const of = <K extends A.Decl['kind']>(k: K) => decls.filter((d): d is Extract<A.Decl, { kind: K }> => d.kind === k);
    const headers = of('workflow');
    const cases = of('case');
    const starts = of('start');
    const stateDecls = of('state');

    for (const extra of headers.slice(1)) this.err('WF0213', extra.span, 'This file already has a workflow header.', 'Put each workflow in its own file.');
    for (const extra of cases.slice(1)) this.err('WF0213', extra.span, 'Case data is declared twice.', 'Merge the fields into one `case { … }` block.');
    for (const extra of starts.slice(1)) this.err('WF0213', extra.span, 'The start is declared twice.', 'Keep one `start 状态 by …` line.');

    for (const r of of('role')) {
      if (this.roles.has(r.name.text)) this.err('WF0204', r.name.span, `Role "${r.name.text}" is declared twice.`, 'Remove one of the declarations.');
      else this.roles.set(r.name.text, r.label === undefined ? {} : { label: r.label.value });
    }

    for (const imp of of('import')) this.importFrom(imp);

    // Types first (they may refer to each other in order), then tables and case data that use them.
    for (const t of of('type')) {
      if (this.types.has(t.name.text) || t.name.text in TYPE_NAMES) {
        this.err('WF0208', t.name.span, `Type "${t.name.text}" is already defined.`, 'Pick another name for this type.');
        continue;
      }
      this.types.set(t.name.text, resolveType(t.type, (n) => this.types.get(n), this.out));
    }
    for (const r of of('rules')) this.addTable(r, this.doc.file);

    const caseDecl = cases[0];
    this.caseFields = caseDecl === undefined ? {} : fieldTypes(caseDecl.fields, (n) => this.types.get(n), this.out);

    for (const s of stateDecls) {
      if (s.name.text === '') continue; // recovery lost the name; the syntax error says so
      if (this.states.has(s.name.text)) this.err('WF0202', s.name.span, `State "${s.name.text}" is declared twice.`, 'Rename one of them or merge their clauses.');
      else this.states.set(s.name.text, s);
    }

    const header = headers[0];
    const isWorkflow = header !== undefined || stateDecls.length > 0 || starts.length > 0 || cases.length > 0;
    if (!isWorkflow) return undefined; // a library of rule tables and types
    if (header === undefined) {
      this.err('WF0212', stateDecls[0]?.span ?? this.doc.span, 'This file has states but no `workflow` header.', 'Start the file with `workflow 名称 "说明"`.');
    }

    const start = starts[0];
    if (start === undefined) {
      this.err('WF0218', header?.span ?? this.doc.span, 'The workflow does not say where a case starts.', 'Add `start 状态 by 角色` after the case data.');
    } else {
      const s = this.states.get(start.state.text);
      if (s === undefined) this.unknownState(start.state);
      else if (s.final) this.err('WF0410', start.state.span, `A case cannot start in the final state "${s.name.text}".`, 'Start in a state where work happens.');
      if (start.who.length === 0) this.err('WF0411', start.span, 'Nobody may start a case.', 'Add `by 角色` or `by anyone` to the start line.');
      for (const w of start.who) this.checkWho(w, this.scope(undefined));
    }

    for (const s of this.states.values()) this.checkState(s);
    if (start !== undefined && this.states.has(start.state.text)) this.checkFlow(start.state.text);
    if (this.states.size > 0 && ![...this.states.values()].some((s) => s.final)) {
      this.err('WF0404', header?.span ?? this.doc.span, 'The workflow has no final state, so no case can ever be closed.', 'Add `final 办结` and a way to reach it.');
    }

    if (header === undefined || start === undefined) return undefined;
    return {
      name: header.name.text,
      ...(header.label === undefined ? {} : { label: header.label.value }),
      file: this.doc.file,
      roles: this.roles,
      types: this.types,
      caseFields: this.caseFields,
      tables: this.tables,
      start,
      states: this.states,
      payloads: this.payloads,
      persons: this.persons,
    };
  }

  // ---- imports and tables ----------------------------------------------------------------

  private importFrom(imp: A.ImportDecl): void {
    let loaded: ReturnType<SourceLoader>;
    try {
      loaded = this.options.load?.(imp.from.value, this.doc.file);
    } catch {
      loaded = undefined; // an unreadable path (a folder, no permission) is as good as missing
    }
    if (loaded === undefined) {
      this.err('WF0214', imp.from.span, `Cannot find the file "${imp.from.value}".`, 'Paths are relative to the importing file, e.g. "shared/分拨.wf".');
      return;
    }
    if (this.importChain.includes(loaded.file)) {
      this.err('WF0220', imp.from.span, `Importing "${imp.from.value}" leads back to this file: ${[...this.importChain, loaded.file].join(' → ')}.`, 'Move the shared tables into a file that imports nothing from here.');
      return;
    }
    const parsed = parse(loaded.source, loaded.file);
    const inner = new Checker(parsed.document, this.options, [...this.importChain, loaded.file]);
    inner.run();
    const innerErrors = [...parsed.diagnostics, ...inner.out].filter((d) => d.severity === 'error');
    if (innerErrors.length > 0) {
      // Report the imported file's own errors there, so they are fixed where they are.
      for (const d of innerErrors) this.out.push({ ...d, file: d.file ?? loaded.file });
    }
    for (const n of imp.names) {
      const table = inner.tables.get(n.text);
      const type = inner.types.get(n.text);
      if (table !== undefined) this.addImportedTable(n, table);
      else if (type !== undefined) this.types.set(n.text, type);
      else {
        const have = [...inner.tables.keys(), ...inner.types.keys()];
        this.err('WF0215', n.span, `"${imp.from.value}" has no rule table or type named "${n.text}".`, have.length > 0 ? `It has: ${have.join(', ')}.` : 'That file declares no rule tables or types.');
      }
    }
  }

  private addImportedTable(n: A.Name, table: ModelTable): void {
    if (this.tables.has(n.text)) this.err('WF0211', n.span, `Rule table "${n.text}" is already defined.`, 'Import it once, or rename the local table.');
    else this.tables.set(n.text, table);
  }

  private addTable(r: A.RulesDecl, file: string): void {
    const signature = checkRules(r, (t, out) => resolveType(t, (n) => this.types.get(n), out), this.out);
    if (this.tables.has(r.name.text)) this.err('WF0211', r.name.span, `Rule table "${r.name.text}" is already defined.`, 'Rename one of the tables.');
    else this.tables.set(r.name.text, { decl: r, signature, file });
  }

  // ---- scopes and expressions ------------------------------------------------------------

  private scope(payload: Record<string, FieldType> | undefined, locals?: Record<string, Type>): ExprScope {
    const tables: Record<string, TableSignature> = {};
    for (const [k, v] of this.tables) tables[k] = v.signature;
    return {
      caseFields: this.caseFields,
      ...(payload === undefined ? {} : { payload }),
      ...(locals === undefined ? {} : { locals }),
      tables,
    };
  }

  private expect(e: A.Expr, scope: ExprScope, want: Type['kind'], code: Parameters<typeof diag>[0], what: string, hint: string): void {
    // An org unit or a person may be named by its id in quotes: `reassign to "县民政局"`.
    if (e.kind === 'string' && (want === 'org' || want === 'actor') && e.value !== '') return;
    const t = checkExpr(e, scope, this.out);
    if (t.kind === 'unknown' || t.kind === 'null' || t.kind === want) return;
    const wanted = want === 'boolean' ? 'true or false' : want === 'org' ? 'an org unit' : want === 'actor' ? 'a person (actor)' : `a ${want}`;
    this.err(code, e.span, `${what} must be ${wanted}, but this is ${showType(t)}.`, hint);
  }

  private condition(e: A.Expr, scope: ExprScope): void {
    this.expect(e, scope, 'boolean', 'WF0302', 'A condition', 'Compare values, e.g. `case.评分 >= 3`, or combine conditions with and/or.');
  }

  private duration(e: A.Expr, scope: ExprScope, what: string): void {
    this.expect(e, scope, 'duration', 'WF0310', what, 'Write a duration such as `2 workdays`, `24 hours` or `30 minutes`.');
  }

  // ---- who -------------------------------------------------------------------------------

  private checkWho(w: A.Who, scope: ExprScope): void {
    switch (w.kind) {
      case 'anyone': return;
      case 'role': {
        const asPerson = w.of === undefined && !this.roles.has(w.role.text) ? (scope.locals?.[w.role.text] ?? scope.payload?.[w.role.text]?.type) : undefined;
        if (asPerson?.kind === 'actor') {
          // `notify 党员 "…"` where 党员 is a payload field of type actor names that person.
          this.persons.add(w);
          return;
        }
        if (!this.roles.has(w.role.text)) {
          const known = [...this.roles.keys()];
          this.err('WF0203', w.role.span, `Unknown role "${w.role.text}".`, known.length > 0 ? `Declare it in \`roles\`, or use one of: ${known.join(', ')}.` : `Declare it with \`roles ${w.role.text}\`.`);
        }
        if (w.of !== undefined) this.expect(w.of, scope, 'org', 'WF0311', `The unit after "of"`, 'Name an org unit, such as case.社区 or a payload field of type org.');
        return;
      }
      case 'person':
        this.expect(w.expr, scope, 'actor', 'WF0312', 'The person who may act', 'Name a field of type actor, such as case.党员, or `submitter`.');
        return;
    }
  }

  // ---- states and clauses ----------------------------------------------------------------

  private unknownState(n: A.Name): void {
    const known = [...this.states.keys()];
    const close = known.find((k) => k.includes(n.text) || n.text.includes(k));
    this.err('WF0201', n.span, `Unknown state "${n.text}".`, close !== undefined ? `Did you mean "${close}"?` : `Declare it with \`state ${n.text}\`${known.length > 0 ? ` or use one of: ${known.join(', ')}` : ''}.`);
  }

  private checkState(s: A.StateDecl): void {
    if (s.final && s.clauses.length > 0) {
      this.err('WF0405', s.clauses[0]?.span ?? s.span, `The final state "${s.name.text}" has transitions; a closed case stays closed.`,
        'Use `state` instead of `final`, or open a new linked case for a recurrence.');
    }
    const hasTimer = s.clauses.some((c) => c.kind === 'after' || (c.kind === 'each' && c.within !== undefined));
    const seen = new Map<string, A.Name>();
    for (const c of s.clauses) {
      const ev = c.kind === 'on' ? c.event : c.kind === 'each' ? c.on.event : undefined;
      if (ev !== undefined && ev.text !== '') {
        if (seen.has(ev.text)) this.err('WF0216', ev.span, `State "${s.name.text}" handles event "${ev.text}" twice.`, 'Merge them into one `on` clause with several `-> 状态 when …` targets.');
        else seen.set(ev.text, ev);
      }
      switch (c.kind) {
        case 'on': this.checkOn(c, undefined, hasTimer); break;
        case 'after': this.checkAfter(c); break;
        case 'each': this.checkEach(c, hasTimer); break;
      }
    }
  }

  private payloadOf(on: A.OnClause): Record<string, FieldType> {
    const p = on.payload;
    let fields: Record<string, FieldType> = {};
    if (p?.kind === 'fields') {
      for (const f of p.fields) {
        if (BUILTIN_NAMES.has(f.name.text)) this.err('WF0219', f.name.span, `"${f.name.text}" already means something in conditions and updates.`, 'Give the payload field another name.');
      }
      fields = fieldTypes(p.fields, (n) => this.types.get(n), this.out);
    } else if (p?.kind === 'typeRef') {
      const t = this.types.get(p.name.text);
      if (t === undefined) this.err('WF0207', p.name.span, `Unknown type "${p.name.text}".`, 'Declare it with `type 名称 = record { … }`, or list the fields: `with { 字段: 类型 }`.');
      else if (t.kind !== 'record') this.err('WF0207', p.name.span, `"${p.name.text}" is ${showType(t)}, not a record of fields.`, 'A payload is a record: `type 评分 = record { 满意: number }`.');
      else fields = { ...t.fields };
    }
    this.payloads.set(on, fields);
    return fields;
  }

  private checkOn(on: A.OnClause, locals: Record<string, Type> | undefined, stateHasTimer: boolean): void {
    const payload = this.payloadOf(on);
    const scope = this.scope(payload, locals);
    if (on.who.length === 0) {
      this.err('WF0411', on.event.span, `Nobody may send "${on.event.text}".`, 'Say who may send it: `by 角色`, `by 角色 of case.单位`, `by case.党员` or `by anyone`.');
    }
    for (const w of on.who) this.checkWho(w, scope);
    for (const r of on.requires) this.condition(r.test, scope);
    this.checkActions(on.actions, scope, stateHasTimer);
    this.checkTargets(on.targets, scope, stateHasTimer);
  }

  private checkAfter(a: A.AfterClause): void {
    const scope = this.scope(undefined);
    this.duration(a.duration, scope, 'The time after `after`');
    for (const r of a.reminders) {
      if (!(r.percent >= 1 && r.percent <= 99)) this.err('WF0601', r.span, `A reminder at ${r.percent}% of the deadline cannot happen before it.`, 'Use a percentage from 1 to 99, e.g. `remind 社区书记 at 80% "…"`.');
      this.checkActions(r.actions, scope, true);
    }
    this.checkActions(a.actions, scope, true);
    this.checkTargets(a.targets, scope, true);
  }

  private checkEach(e: A.EachClause, stateHasTimer: boolean): void {
    const scope = this.scope(undefined);
    const items = checkExpr(e.items, scope, this.out);
    if (items.kind !== 'unknown' && items.kind !== 'null' && !(items.kind === 'list' && (items.item.kind === 'org' || items.item.kind === 'unknown'))) {
      this.err('WF0317', e.items.span, `The units to summon must be a list of org units, but this is ${showType(items)}.`, 'Use a case field declared as `list of org`.');
    }
    const locals = { [e.variable.text]: T.org };
    this.checkOn(e.on, locals, stateHasTimer);
    if (e.on.targets.length > 0) this.err('WF0406', e.on.targets[0]?.span ?? e.span, 'Targets of a multi-unit step go after `join`.', 'Write `join all within 2 workdays -> 下一步`.');
    if (e.join.kind === 'atLeast') {
      this.expect(e.join.count, scope, 'number', 'WF0316', 'The join count', 'Write `join at least 2`.');
      if (e.join.count.kind === 'number' && !(e.join.count.value >= 1 && Number.isInteger(e.join.count.value))) {
        this.err('WF0603', e.join.count.span, `A join needs a whole number of units of at least 1, not ${e.join.count.value}.`, 'Write `join at least 2`, or `join any` for one.');
      }
    }
    if (e.within === undefined) {
      const timeoutPart = e.timeoutActions[0] ?? e.timeoutTargets[0];
      if (timeoutPart !== undefined) this.err('WF0605', timeoutPart.span, '`timeout` needs a deadline to time out.', 'Add `within 2 workdays` after the join.');
      else this.err('WF0604', e.join.span, 'The summoned units have no deadline to report by, so a unit that never reports is never recorded.', 'Add `within 2 workdays` after the join.');
    } else {
      this.duration(e.within, scope, 'The time after `within`');
    }
    this.checkTargets(e.targets, scope, true);
    this.checkActions(e.timeoutActions, scope, true);
    this.checkTargets(e.timeoutTargets, scope, true);
  }

  private checkActions(actions: readonly A.Action[], scope: ExprScope, stateHasTimer: boolean): void {
    for (const a of actions) {
      switch (a.kind) {
        case 'set': this.checkSet(a, scope); break;
        case 'notify': this.checkWho(a.who, scope); break;
        case 'credit':
          if (a.unit === 'points') this.expect(a.amount, scope, 'number', 'WF0316', 'The points credited', 'Write `credit 5 points to case.党员`.');
          else this.duration(a.amount, scope, 'The time credited to the time bank');
          this.expect(a.to, scope, 'actor', 'WF0312', 'Who is credited', 'Name a field of type actor, such as case.党员.');
          break;
        case 'emit': if (a.payload !== undefined) checkExpr(a.payload, scope, this.out); break;
        case 'escalate': break;
        case 'reassign': this.expect(a.to, scope, 'org', 'WF0311', 'The unit to reassign to', 'Name an org unit, such as case.单位.'); break;
        case 'extend':
          this.duration(a.by, scope, 'The extension');
          if (!stateHasTimer) this.err('WF0602', a.span, 'This state has no deadline to extend.', 'Add an `after` timer to the state, or remove `extend`.');
          break;
      }
    }
  }

  private checkSet(a: A.SetAction, scope: ExprScope): void {
    const t = a.target;
    if (!(t.kind === 'member' && t.object.kind === 'ref' && t.object.name.text === 'case')) {
      this.err('WF0304', t.span, 'Only case data can be set.', 'Write `set case.字段 = 值`.');
      checkExpr(a.value, scope, this.out);
      return;
    }
    const field = this.caseFields[t.property.text];
    const literalId = a.value.kind === 'string' && (field?.type.kind === 'org' || field?.type.kind === 'actor');
    const valueType = literalId ? field.type : checkExpr(a.value, scope, this.out);
    if (field === undefined) {
      const known = Object.keys(this.caseFields);
      this.err('WF0205', t.property.span, `The case has no field "${t.property.text}".`, known.length > 0 ? `Add it to \`case { … }\`, or use one of: ${known.join(', ')}.` : 'Declare it in `case { … }`.');
      return;
    }
    if (!assignable(valueType, field.type)) {
      this.err('WF0303', a.value.span, `case.${t.property.text} holds ${showType(field.type)}, but this value is ${showType(valueType)}.`, 'Set it to a value of the field\'s type.');
    }
  }

  private checkTargets(targets: readonly A.Target[], scope: ExprScope, stateHasTimer: boolean): void {
    targets.forEach((t, i) => {
      this.checkActions(t.actions, scope, stateHasTimer);
      if (t.state.text !== '' && !this.states.has(t.state.text)) this.unknownState(t.state);
      if (t.when !== undefined) this.condition(t.when, scope);
      const last = i === targets.length - 1;
      if (t.otherwise && !last) this.err('WF0409', t.span, '`otherwise` must be the last target.', 'Move this target after the ones with `when`.');
      if (!t.otherwise && t.when === undefined && !last) this.err('WF0406', t.span, 'This target has no condition, so the targets after it can never be taken.', 'Add `when 条件` to it, or move it last.');
    });
    const lastT = targets[targets.length - 1];
    if (lastT !== undefined && lastT.when !== undefined && targets.length > 0) {
      this.err('WF0407', lastT.span, 'When none of the conditions hold, the event would be accepted with nowhere to go.', 'End the list with `-> 状态 otherwise`.');
    }
  }

  // ---- the closed-loop proof -------------------------------------------------------------

  private checkFlow(start: string): void {
    // A target to an unknown state is already an error; guessing where it was meant to go would
    // only add traps and unreachable states that are the same mistake again.
    const unresolved = new Set([...this.states.values()].filter((s) => targetsOf(s).some((t) => !this.states.has(t))).map((s) => s.name.text));
    const edges = new Map<string, Set<string>>();
    for (const s of this.states.values()) edges.set(s.name.text, new Set(targetsOf(s).filter((t) => this.states.has(t))));

    const reachable = new Set<string>([start]);
    const queue = [start];
    while (queue.length > 0) {
      const s = queue.pop() as string;
      for (const t of edges.get(s) ?? []) if (!reachable.has(t)) { reachable.add(t); queue.push(t); }
    }

    const finals = [...this.states.values()].filter((s) => s.final).map((s) => s.name.text);
    const canFinish = new Set<string>(finals);
    let grew = true;
    while (grew) {
      grew = false;
      for (const [s, ts] of edges) {
        if (!canFinish.has(s) && [...ts].some((t) => canFinish.has(t))) { canFinish.add(s); grew = true; }
      }
    }

    for (const s of this.states.values()) {
      const name = s.name.text;
      if (!reachable.has(name)) {
        if (unresolved.size > 0) continue;
        this.err('WF0401', s.name.span, `No case can ever reach "${name}".`, 'Add a target `-> ' + name + '` from another state, or remove this state.');
        continue;
      }
      if (s.final) continue;
      const out = [...(edges.get(name) ?? [])].filter((t) => t !== name);
      if (unresolved.has(name)) {
        // Skip the trap and finish checks: the unknown target may be the way out.
      } else if (out.length === 0) {
        this.err('WF0402', s.name.span, `A case in "${name}" can never leave it: no event or timer leads to another state.`, 'Add `on 事件 by 角色 -> 下一状态` or `after 2 workdays -> 下一状态`.');
      } else if (finals.length > 0 && !canFinish.has(name) && unresolved.size === 0) {
        this.err('WF0403', s.name.span, `From "${name}" no final state can be reached; cases would circle forever.`, `Add a way from one of these states to a final state: ${[...reachable].filter((r) => !canFinish.has(r)).join(', ')}.`);
      }
      const waitsOnPeople = s.clauses.some((c) => c.kind === 'on' || c.kind === 'each');
      const hasDeadline = s.clauses.some((c) => c.kind === 'after' || (c.kind === 'each' && c.within !== undefined));
      if (waitsOnPeople && !hasDeadline) {
        this.err('WF0408', s.name.span, `"${name}" waits for people with no deadline, so a forgotten case waits forever.`, 'Add `after 3 workdays escalate -> ' + name + '` or another timer.');
      }
    }
  }
}

function targetsOf(s: A.StateDecl): string[] {
  return s.clauses.flatMap((c) => {
    switch (c.kind) {
      case 'on': return c.targets.map((t) => t.state.text);
      case 'after': return c.targets.map((t) => t.state.text);
      case 'each': return [...c.targets, ...c.timeoutTargets].map((t) => t.state.text);
    }
  });
}

/** Whether a value of type `from` may be stored in a field of type `to`. */
export function assignable(from: Type, to: Type): boolean {
  if (from.kind === 'unknown' || to.kind === 'unknown' || from.kind === 'null') return true;
  if (to.kind === 'enum') return from.kind === 'enum' ? from.members.every((m) => to.members.includes(m)) : from.kind === 'text';
  if (to.kind === 'text') return from.kind === 'text' || from.kind === 'enum';
  if (to.kind === 'list') return from.kind === 'list' && assignable(from.item, to.item);
  if (to.kind === 'record') {
    if (from.kind !== 'record') return false;
    return Object.entries(to.fields).every(([k, f]) => {
      const g = from.fields[k];
      return g === undefined ? f.optional : assignable(g.type, f.type);
    });
  }
  return from.kind === to.kind;
}
