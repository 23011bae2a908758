/**
 * Maps chevrotain's concrete syntax tree to the AST of `ast.ts`. Works on partial trees too:
 * recovery may leave any child missing, so every read here has a fallback.
 */
import type { CstNode, IToken } from 'chevrotain';
import type * as A from './ast.ts';
import { diag, type Diagnostic } from './diagnostics.ts';

type Children = Record<string, (CstNode | IToken)[] | undefined>;

const ZERO: A.Pos = { line: 1, col: 1, offset: 0 };

function isToken(x: CstNode | IToken): x is IToken {
  return (x as IToken).image !== undefined;
}

function real(t: IToken | undefined): t is IToken {
  return t !== undefined && !t.isInsertedInRecovery && Number.isFinite(t.startOffset);
}

function startOf(t: IToken): A.Pos {
  return { line: t.startLine ?? 1, col: t.startColumn ?? 1, offset: t.startOffset };
}

function endOf(t: IToken): A.Pos {
  return { line: t.endLine ?? t.startLine ?? 1, col: (t.endColumn ?? t.startColumn ?? 0) + 1, offset: (t.endOffset ?? t.startOffset) + 1 };
}

/** Every real token under a node, in source order; used for spans. */
function tokensOf(n: CstNode | IToken | undefined, acc: IToken[] = []): IToken[] {
  if (n === undefined) return acc;
  if (isToken(n)) {
    if (real(n)) acc.push(n);
    return acc;
  }
  for (const list of Object.values(n.children)) for (const c of list ?? []) tokensOf(c, acc);
  return acc;
}

export class AstBuilder {
  readonly diagnostics: Diagnostic[] = [];
  /** The last real position seen, where a node that recovery left empty is placed. */
  private lastPos: A.Pos = ZERO;

  constructor(private readonly file: string) {}

  // ---- small readers -------------------------------------------------------------------

  private kids(n: CstNode | undefined): Children {
    return (n?.children ?? {}) as Children;
  }

  private tok(n: CstNode | undefined, key: string, i = 0): IToken | undefined {
    const t = this.kids(n)[key]?.[i];
    return t !== undefined && isToken(t) && real(t) ? t : undefined;
  }

  private toks(n: CstNode | undefined, key: string): IToken[] {
    return (this.kids(n)[key] ?? []).filter((t): t is IToken => isToken(t) && real(t));
  }

  private sub(n: CstNode | undefined, key: string, i = 0): CstNode | undefined {
    const c = this.kids(n)[key]?.[i];
    return c !== undefined && !isToken(c) ? c : undefined;
  }

  private subs(n: CstNode | undefined, key: string): CstNode[] {
    return (this.kids(n)[key] ?? []).filter((c): c is CstNode => !isToken(c));
  }

  private span(n: CstNode | IToken | undefined): A.Span {
    // chevrotain tracks each node's extent; only a node that recovery touched needs its tokens walked.
    const loc = n !== undefined && !isToken(n) ? n.location : undefined;
    if (loc !== undefined && Number.isFinite(loc.startOffset) && Number.isFinite(loc.endOffset) && n !== undefined && !isToken(n) && n.recoveredNode !== true) {
      const s = {
        start: { line: loc.startLine ?? 1, col: loc.startColumn ?? 1, offset: loc.startOffset },
        end: { line: loc.endLine ?? 1, col: (loc.endColumn ?? 0) + 1, offset: (loc.endOffset ?? loc.startOffset) + 1 },
      };
      this.lastPos = s.end;
      return s;
    }
    const ts = tokensOf(n).sort((a, b) => a.startOffset - b.startOffset);
    const first = ts[0];
    const last = ts[ts.length - 1];
    if (first === undefined || last === undefined) return { start: this.lastPos, end: this.lastPos };
    const s = { start: startOf(first), end: endOf(last) };
    this.lastPos = s.end;
    return s;
  }

  private spanOfTokens(...ts: (IToken | undefined)[]): A.Span {
    const rs = ts.filter(real).sort((a, b) => a.startOffset - b.startOffset);
    const first = rs[0];
    const last = rs[rs.length - 1];
    if (first === undefined || last === undefined) return { start: this.lastPos, end: this.lastPos };
    return { start: startOf(first), end: endOf(last) };
  }

  private name(t: IToken | undefined): A.Name {
    if (t === undefined) return { kind: 'name', text: '', span: { start: this.lastPos, end: this.lastPos } };
    return { kind: 'name', text: t.image, span: this.spanOfTokens(t) };
  }

  private str(t: IToken | undefined): A.Str | undefined {
    if (t === undefined) return undefined;
    return { kind: 'str', value: unquote(t.image), span: this.spanOfTokens(t) };
  }

  // ---- top level -----------------------------------------------------------------------

  document(cst: CstNode | undefined, sourceLength: number, endPos: A.Pos): A.Document {
    const decls: A.Decl[] = [];
    for (const d of this.subs(cst, 'decl')) decls.push(...this.decl(d));
    return { kind: 'document', file: this.file, decls, span: { start: ZERO, end: sourceLength === 0 ? ZERO : endPos } };
  }

  private decl(n: CstNode): A.Decl[] {
    const k = this.kids(n);
    const first = Object.keys(k)[0];
    const c = first === undefined ? undefined : this.sub(n, first);
    switch (first) {
      case 'workflowHeader': return [{ kind: 'workflow', name: this.name(this.tok(c, 'Identifier')), ...this.label(c), span: this.span(c) }];
      case 'rolesDecl': return this.subs(c, 'roleItem').map((r) => ({ kind: 'role', name: this.name(this.tok(r, 'Identifier')), ...this.label(r), span: this.span(r) }));
      case 'importDecl': {
        const from = this.str(this.tok(c, 'StringLiteral')) ?? { kind: 'str', value: '', span: this.span(c) };
        return [{ kind: 'import', names: this.toks(c, 'Identifier').map((t) => this.name(t)), from, span: this.span(c) }];
      }
      case 'typeDecl': return [{ kind: 'type', name: this.name(this.tok(c, 'Identifier')), type: this.typeExpr(this.sub(c, 'typeExpr')), span: this.span(c) }];
      case 'caseDecl': return [{ kind: 'case', fields: this.fieldList(this.sub(c, 'fieldList')), span: this.span(c) }];
      case 'startDecl': return [{ kind: 'start', state: this.name(this.tok(c, 'Identifier')), who: this.whoList(this.sub(c, 'whoList')), span: this.span(c) }];
      case 'stateDecl': return [this.state(c)];
      case 'rulesDecl': return [this.rules(c)];
      default: return [];
    }
  }

  private label(n: CstNode | undefined): { label?: A.Str } {
    const s = this.str(this.tok(n, 'StringLiteral'));
    return s === undefined ? {} : { label: s };
  }

  private state(n: CstNode | undefined): A.StateDecl {
    return {
      kind: 'state',
      name: this.name(this.tok(n, 'Identifier')),
      ...this.label(n),
      final: this.tok(n, 'K_final') !== undefined,
      clauses: this.subs(n, 'clause').flatMap((c) => this.clause(c)),
      span: this.span(n),
    };
  }

  // ---- fields and types ----------------------------------------------------------------

  private fieldList(n: CstNode | undefined): A.FieldDecl[] {
    return this.subs(n, 'field').map((f) => this.field(f));
  }

  private field(n: CstNode): A.FieldDecl {
    const defaultExpr = this.sub(n, 'expression');
    const base = {
      kind: 'field' as const,
      name: this.name(this.tok(n, 'Identifier')),
      ...this.label(n),
      type: this.typeExpr(this.sub(n, 'typeExpr')),
      optional: this.tok(n, 'Question') !== undefined,
      constraints: this.subs(n, 'constraint').map((c) => this.constraint(c)),
      span: this.span(n),
    };
    return defaultExpr === undefined ? base : { ...base, default: this.expr(defaultExpr) };
  }

  private typeExpr(n: CstNode | undefined): A.TypeExpr {
    const span = this.span(n);
    if (this.tok(n, 'K_one') !== undefined) {
      return { kind: 'enum', members: this.toks(n, 'Identifier').map((t) => this.name(t)), span };
    }
    if (this.tok(n, 'K_list') !== undefined) return { kind: 'listOf', item: this.typeExpr(this.sub(n, 'typeExpr')), span };
    if (this.tok(n, 'K_record') !== undefined) return { kind: 'record', fields: this.fieldList(this.sub(n, 'fieldList')), span };
    return { kind: 'named', name: this.name(this.tok(n, 'Identifier')), span };
  }

  private constraint(n: CstNode): A.Constraint {
    const span = this.span(n);
    if (this.tok(n, 'K_matches') !== undefined) {
      return { kind: 'matches', pattern: this.str(this.tok(n, 'StringLiteral')) ?? { kind: 'str', value: '', span }, span };
    }
    const min = this.expr(this.sub(n, 'operand', 0));
    const max = this.expr(this.sub(n, 'operand', 1));
    return { kind: this.tok(n, 'K_length') !== undefined ? 'length' : 'range', min, max, span };
  }

  // ---- who -----------------------------------------------------------------------------

  private whoList(n: CstNode | undefined): A.Who[] {
    return this.subs(n, 'who').map((w) => this.who(w));
  }

  private who(n: CstNode | undefined): A.Who {
    const span = this.span(n);
    if (this.tok(n, 'K_anyone') !== undefined) return { kind: 'anyone', span };
    const postfixes = this.subs(n, 'postfix');
    const role = this.tok(n, 'Identifier');
    if (role === undefined && postfixes[0] !== undefined) return { kind: 'person', expr: this.expr(postfixes[0]), span };
    const roleName = this.name(role);
    if (PERSON_WORDS.has(roleName.text)) return { kind: 'person', expr: { kind: 'ref', name: roleName, span: roleName.span }, span };
    const of = postfixes[0];
    return of === undefined ? { kind: 'role', role: roleName, span } : { kind: 'role', role: roleName, of: this.expr(of), span };
  }

  // ---- clauses -------------------------------------------------------------------------

  private clause(n: CstNode): A.Clause[] {
    const on = this.sub(n, 'onClause');
    if (on !== undefined) return [this.onClause(this.sub(on, 'onHead'), this.subs(on, 'target'), this.span(on))];
    const after = this.sub(n, 'afterClause');
    if (after !== undefined) return [this.afterClause(after)];
    const each = this.sub(n, 'eachClause');
    if (each !== undefined) return [this.eachClause(each)];
    return [];
  }

  private onClause(head: CstNode | undefined, targets: CstNode[], span: A.Span): A.OnClause {
    const payloadNode = this.sub(head, 'payload');
    const base: A.OnClause = {
      kind: 'on',
      event: this.name(this.tok(head, 'Identifier')),
      ...this.label(head),
      who: this.headWho(head),
      requires: this.subs(head, 'requireClause').map((r) => this.require(r)),
      actions: this.subs(head, 'action').map((a) => this.action(a)),
      targets: targets.map((t) => this.target(t)),
      span,
    };
    if (payloadNode === undefined) return base;
    const pspan = this.span(payloadNode);
    const fields = this.sub(payloadNode, 'fieldList');
    const payload: A.Payload = this.tok(payloadNode, 'LCurly') !== undefined || fields !== undefined
      ? { kind: 'fields', fields: this.fieldList(fields), span: pspan }
      : { kind: 'typeRef', name: this.name(this.tok(payloadNode, 'Identifier')), span: pspan };
    return { ...base, payload };
  }

  /**
   * The senders after `by`. When `by` is written but recovery could parse nothing after it, the
   * syntax error is the whole story: stand in `anyone` so the checker does not add "nobody may send".
   */
  private headWho(head: CstNode | undefined): A.Who[] {
    const who = this.subs(head, 'whoList').flatMap((w) => this.whoList(w));
    const by = this.tok(head, 'K_by');
    if (who.length === 0 && by !== undefined) return [{ kind: 'anyone', span: this.spanOfTokens(by) }];
    return who;
  }

  private require(n: CstNode): A.Require {
    const message = this.str(this.tok(n, 'StringLiteral'));
    const base = { kind: 'require' as const, test: this.expr(this.sub(n, 'expression')), span: this.span(n) };
    return message === undefined ? base : { ...base, message };
  }

  private afterClause(n: CstNode): A.AfterClause {
    return {
      kind: 'after',
      duration: this.expr(this.sub(n, 'expression')),
      reminders: this.subs(n, 'reminder').map((r) => this.reminder(r)),
      actions: this.subs(n, 'action').map((a) => this.action(a)),
      targets: this.subs(n, 'target').map((t) => this.target(t)),
      span: this.span(n),
    };
  }

  private reminder(n: CstNode): A.Reminder {
    const span = this.span(n);
    const pct = this.tok(n, 'NumberLiteral');
    const message = this.str(this.tok(n, 'StringLiteral')) ?? { kind: 'str', value: '', span };
    const notify: A.NotifyAction = { kind: 'notify', who: this.who(this.sub(n, 'who')), message, span };
    return { kind: 'remind', percent: pct === undefined ? Number.NaN : Number(pct.image), actions: [notify], span };
  }

  private eachClause(n: CstNode): A.EachClause {
    const span = this.span(n);
    const head = this.sub(n, 'onHead');
    const on = this.onClause(head, [], this.span(head));
    const timeoutTok = this.tok(n, 'K_timeout');
    const targets = this.subs(n, 'target').map((t) => this.target(t));
    // Targets after `timeout` belong to it; chevrotain keeps both lists under one key, so split by position.
    const cut = timeoutTok === undefined ? Infinity : timeoutTok.startOffset;
    const join: A.JoinRule = this.tok(n, 'K_all') !== undefined ? { kind: 'all', span: this.spanOfTokens(this.tok(n, 'K_all')) }
      : this.tok(n, 'K_any') !== undefined ? { kind: 'any', span: this.spanOfTokens(this.tok(n, 'K_any')) }
        : { kind: 'atLeast', count: this.expr(this.sub(n, 'operand')), span: this.spanOfTokens(this.tok(n, 'K_at'), this.tok(n, 'K_least')) };
    const exprs = this.subs(n, 'expression');
    const withinTok = this.tok(n, 'K_within');
    const base: A.EachClause = {
      kind: 'each',
      variable: this.name(this.tok(n, 'Identifier')),
      items: this.expr(exprs[0]),
      on,
      join,
      targets: targets.filter((t) => t.span.start.offset < cut),
      timeoutActions: this.subs(n, 'action').map((a) => this.action(a)),
      timeoutTargets: targets.filter((t) => t.span.start.offset >= cut),
      span,
    };
    return withinTok === undefined ? base : { ...base, within: this.expr(exprs[1]) };
  }

  private target(n: CstNode): A.Target {
    const when = this.sub(n, 'expression');
    const base = {
      kind: 'target' as const,
      state: this.name(this.tok(n, 'Identifier')),
      otherwise: this.tok(n, 'K_otherwise') !== undefined,
      actions: this.subs(n, 'action').map((a) => this.action(a)),
      span: this.span(n),
    };
    return when === undefined ? base : { ...base, when: this.expr(when) };
  }

  private action(n: CstNode): A.Action {
    const span = this.span(n);
    const exprs = this.subs(n, 'expression');
    if (this.tok(n, 'K_set') !== undefined) {
      return { kind: 'set', target: this.expr(this.sub(n, 'postfix')), value: this.expr(exprs[0]), span };
    }
    if (this.tok(n, 'K_notify') !== undefined) {
      return { kind: 'notify', who: this.who(this.sub(n, 'who')), message: this.str(this.tok(n, 'StringLiteral')) ?? { kind: 'str', value: '', span }, span };
    }
    if (this.tok(n, 'K_credit') !== undefined) {
      const reason = this.str(this.tok(n, 'StringLiteral'));
      const base = { kind: 'credit' as const, amount: this.expr(exprs[0]), unit: this.tok(n, 'K_points') !== undefined ? 'points' as const : 'hours' as const, to: this.expr(exprs[1]), span };
      return reason === undefined ? base : { ...base, reason };
    }
    if (this.tok(n, 'K_emit') !== undefined) {
      const topic = this.str(this.tok(n, 'StringLiteral')) ?? { kind: 'str', value: '', span };
      return exprs[0] === undefined ? { kind: 'emit', topic, span } : { kind: 'emit', topic, payload: this.expr(exprs[0]), span };
    }
    if (this.tok(n, 'K_escalate') !== undefined) return { kind: 'escalate', span };
    if (this.tok(n, 'K_reassign') !== undefined) return { kind: 'reassign', to: this.expr(exprs[0]), span };
    return { kind: 'extend', by: this.expr(exprs[0]), span };
  }

  // ---- decision tables -----------------------------------------------------------------

  private rules(n: CstNode | undefined): A.RulesDecl {
    const hitTok = this.tok(n, 'K_unique') ?? this.tok(n, 'K_first') ?? this.tok(n, 'K_collect');
    const hit: A.HitPolicy = hitTok === undefined ? 'unique' : (hitTok.image as A.HitPolicy);
    const base: A.RulesDecl = {
      kind: 'rules',
      name: this.name(this.tok(n, 'Identifier')),
      ...this.label(n),
      inputs: this.columns(this.sub(n, 'columns', 0)),
      outputs: this.columns(this.sub(n, 'columns', 1)),
      hit,
      rows: this.subs(n, 'ruleRow').map((r) => this.row(r)),
      span: this.span(n),
    };
    return hitTok === undefined ? base : { ...base, hitSpan: this.spanOfTokens(hitTok) };
  }

  private columns(n: CstNode | undefined): A.ColumnDecl[] {
    return this.subs(n, 'column').map((c) => ({
      kind: 'column',
      name: this.name(this.tok(c, 'Identifier')),
      type: this.typeExpr(this.sub(c, 'typeExpr')),
      span: this.span(c),
    }));
  }

  private row(n: CstNode): A.RuleRow {
    return { kind: 'row', cells: this.subs(n, 'cell').map((c) => this.cell(c)), isDefault: this.tok(n, 'K_default') !== undefined, span: this.span(n) };
  }

  private cell(n: CstNode): A.Cell {
    const span = this.span(n);
    if (this.tok(n, 'Star') !== undefined) return { kind: 'any', span };
    const atoms = this.subs(n, 'cellAtom').map((a) => this.cellAtom(a));
    const op = (['Eq', 'Neq', 'Le', 'Ge', 'Lt', 'Gt'] as const).find((k) => this.tok(n, k) !== undefined);
    const first = atoms[0] ?? { kind: 'error' as const, span };
    if (op !== undefined) return { kind: 'compare', op: OPS[op], value: first, span };
    if (this.tok(n, 'DotDot') !== undefined) return { kind: 'range', min: first, max: atoms[1] ?? { kind: 'error', span }, span };
    return { kind: 'oneOf', values: atoms, span };
  }

  private cellAtom(n: CstNode): A.Expr {
    const span = this.span(n);
    const num = this.tok(n, 'NumberLiteral');
    if (num !== undefined) {
      const sign = this.tok(n, 'Minus') === undefined ? 1 : -1;
      const amount = sign * this.number(num);
      const unit = this.tok(n, 'Identifier');
      return unit === undefined ? { kind: 'number', value: amount, span } : { kind: 'duration', amount, unit: this.name(unit), span };
    }
    const s = this.tok(n, 'StringLiteral');
    if (s !== undefined) return { kind: 'string', value: unquote(s.image), bare: false, span };
    const word = this.tok(n, 'Identifier');
    if (word !== undefined) return { kind: 'string', value: word.image, bare: true, span };
    if (this.tok(n, 'K_true') !== undefined) return { kind: 'bool', value: true, span };
    if (this.tok(n, 'K_false') !== undefined) return { kind: 'bool', value: false, span };
    if (this.tok(n, 'K_null') !== undefined) return { kind: 'null', span };
    return { kind: 'error', span };
  }

  // ---- expressions ---------------------------------------------------------------------

  private number(t: IToken): number {
    const v = Number(t.image);
    if (!Number.isFinite(v)) {
      this.diagnostics.push(diag('WF0107', this.spanOfTokens(t), `The number ${t.image.slice(0, 20)}… is too large.`, 'Write a number below 1e308.'));
      return 0;
    }
    return v;
  }

  /**
   * Precedence climbing over a flat `binaryChain` (or a lone `operand`). Loosest first: `or`, `and`,
   * `not`, comparisons and `in`, `??`, `+ -`, `* / %`, unary `-`. Binary operators group to the left.
   */
  private chain(n: CstNode): A.Expr {
    const operandNodes = n.name === 'operand' ? [n] : this.subs(n, 'operand');
    const ops: { t: IToken; op: A.BinaryOp }[] = [];
    if (n.name !== 'operand') {
      for (const key of Object.keys(n.children)) {
        const op = BINARY_TOKENS[key];
        if (op !== undefined) for (const t of this.toks(n, key)) ops.push({ t, op });
      }
      if (ops.length > 1) ops.sort((a, b) => a.t.startOffset - b.t.startOffset);
    }
    if (operandNodes.length === 1 && ops.length === 0) {
      const only = operandNodes[0] as CstNode;
      if (this.kids(only)['K_not'] === undefined && this.kids(only)['NotOp'] === undefined && this.kids(only)['Minus'] === undefined) {
        return this.expr(this.sub(only, 'postfix'));
      }
    }
    // The stream: each operand's prefix operators, then its value; binary operators between.
    type Item = { kind: 'prefix'; op: A.UnaryOp; t: IToken } | { kind: 'value'; e: A.Expr } | { kind: 'op'; op: A.BinaryOp };
    const items: Item[] = [];
    operandNodes.forEach((o, i) => {
      const prefixes = [...this.toks(o, 'K_not'), ...this.toks(o, 'NotOp'), ...this.toks(o, 'Minus')].sort((a, b) => a.startOffset - b.startOffset);
      for (const t of prefixes) items.push({ kind: 'prefix', op: t.image === '-' ? '-' : 'not', t });
      items.push({ kind: 'value', e: this.expr(this.sub(o, 'postfix')) });
      const op = ops[i];
      if (op !== undefined && i < operandNodes.length - 1) items.push({ kind: 'op', op: op.op });
    });
    let at = 0;
    const parse = (minPrec: number): A.Expr => {
      const item = items[at++];
      let left: A.Expr;
      if (item === undefined) left = { kind: 'error', span: { start: this.lastPos, end: this.lastPos } };
      else if (item.kind === 'prefix') {
        const operand = parse(item.op === 'not' ? NOT_PREC : UNARY_PREC);
        left = { kind: 'unary', op: item.op, operand, span: { start: this.spanOfTokens(item.t).start, end: operand.span.end } };
      } else if (item.kind === 'value') left = item.e;
      else left = { kind: 'error', span: { start: this.lastPos, end: this.lastPos } };
      for (;;) {
        const next = items[at];
        if (next?.kind !== 'op' || PRECEDENCE[next.op] < minPrec) return left;
        at++;
        const right = parse(PRECEDENCE[next.op] + 1);
        left = { kind: 'binary', op: next.op, left, right, span: { start: left.span.start, end: right.span.end } };
      }
    };
    return parse(0);
  }

  expr(n: CstNode | undefined): A.Expr {
    if (n === undefined) return { kind: 'error', span: { start: this.lastPos, end: this.lastPos } };
    const only = (key: string): CstNode | undefined => this.sub(n, key);
    switch (n.name) {
      case 'expression': return this.expr(only('conditional') ?? only('binaryChain'));
      case 'conditional': {
        const es = this.subs(n, 'expression');
        return { kind: 'if', test: this.expr(es[0]), then: this.expr(es[1]), else: this.expr(es[2]), span: this.span(n) };
      }
      case 'binaryChain': return this.chain(n);
      case 'operand': return this.chain(n);
      case 'postfix': return this.postfix(n);
      case 'primary': return this.primary(n);
      default: return { kind: 'error', span: this.span(n) };
    }
  }

  private postfix(n: CstNode): A.Expr {
    let acc = this.expr(this.sub(n, 'primary'));
    if (this.kids(n)['Dot'] === undefined && this.kids(n)['LBracket'] === undefined) return acc;
    // When recovery left the primary empty, its placeholder position may lie after the accesses.
    const start = this.span(n).start;
    if (acc.span.start.offset > start.offset) acc = { ...acc, span: { start, end: start } } as A.Expr;
    // Member and index accesses interleave; order them by source position.
    const steps = [
      ...this.toks(n, 'Identifier').map((t) => ({ at: t.startOffset, member: t, index: undefined as CstNode | undefined })),
      ...this.subs(n, 'expression').map((e) => ({ at: tokensOf(e)[0]?.startOffset ?? Infinity, member: undefined as IToken | undefined, index: e })),
    ].sort((a, b) => a.at - b.at);
    for (const s of steps) {
      if (s.member !== undefined) {
        const property = this.name(s.member);
        acc = { kind: 'member', object: acc, property, span: { start: acc.span.start, end: property.span.end } };
      } else {
        const index = this.expr(s.index);
        acc = { kind: 'index', object: acc, index, span: { start: acc.span.start, end: { ...index.span.end, col: index.span.end.col + 1, offset: index.span.end.offset + 1 } } };
      }
    }
    return acc;
  }

  private primary(n: CstNode): A.Expr {
    const span = this.span(n);
    const num = this.tok(n, 'NumberLiteral');
    if (num !== undefined) {
      const unit = this.tok(n, 'Identifier');
      const value = this.number(num);
      return unit === undefined ? { kind: 'number', value, span } : { kind: 'duration', amount: value, unit: this.name(unit), span };
    }
    const s = this.tok(n, 'StringLiteral');
    if (s !== undefined) return { kind: 'string', value: unquote(s.image), bare: false, span };
    if (this.tok(n, 'K_true') !== undefined) return { kind: 'bool', value: true, span };
    if (this.tok(n, 'K_false') !== undefined) return { kind: 'bool', value: false, span };
    if (this.tok(n, 'K_null') !== undefined) return { kind: 'null', span };
    const caseTok = this.tok(n, 'K_case');
    if (caseTok !== undefined) return { kind: 'ref', name: this.name(caseTok), span };
    const id = this.tok(n, 'Identifier');
    if (id !== undefined) {
      if (this.tok(n, 'LParen') !== undefined) {
        return { kind: 'call', callee: this.name(id), args: this.subs(n, 'expression').map((e) => this.expr(e)), span };
      }
      return { kind: 'ref', name: this.name(id), span };
    }
    if (this.tok(n, 'LBracket') !== undefined) return { kind: 'list', items: this.subs(n, 'expression').map((e) => this.expr(e)), span };
    const inner = this.sub(n, 'expression');
    if (inner !== undefined) return this.expr(inner);
    return { kind: 'error', span };
  }
}

const OPS = { Eq: '==', Neq: '!=', Le: '<=', Ge: '>=', Lt: '<', Gt: '>' } as const;

const BINARY_TOKENS: Record<string, A.BinaryOp> = {
  K_or: 'or', OrOp: 'or', K_and: 'and', AndOp: 'and',
  Eq: '==', Neq: '!=', Le: '<=', Ge: '>=', Lt: '<', Gt: '>', K_in: 'in',
  Coalesce: '??', Plus: '+', Minus: '-', Star: '*', Slash: '/', Percent: '%',
};

const PRECEDENCE: Record<A.BinaryOp, number> = {
  or: 1, and: 2,
  '==': 4, '!=': 4, '<': 4, '<=': 4, '>': 4, '>=': 4, in: 4,
  '??': 5, '+': 6, '-': 6, '*': 7, '/': 7, '%': 7,
};
/** `not` binds looser than comparisons (`not a == b` is `not (a == b)`), tighter than `and`. */
const NOT_PREC = 3;
const UNARY_PREC = 8;

/** Words after `by` that name one person rather than a role. */
export const PERSON_WORDS: ReadonlySet<string> = new Set(['submitter', '提交人', 'actor']);

/** The text of a string token without its quotes; `\n`, `\t`, `\"`, `\\` and `\uXXXX` escapes in "…" strings. */
export function unquote(image: string): string {
  const open = image[0];
  const close = open === '"' ? '"' : open === '“' ? '”' : '」';
  const body = image.endsWith(close) && image.length >= 2 ? image.slice(1, -1) : image.slice(1);
  if (open !== '"') return body;
  return body.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, e: string) => {
    if (e.startsWith('u') && e.length === 5) return String.fromCharCode(parseInt(e.slice(1), 16));
    return e === 'n' ? '\n' : e === 't' ? '\t' : e;
  });
}
