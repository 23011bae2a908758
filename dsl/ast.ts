/**
 * The syntax tree of a `.wf` source file. The parser's concrete tree is mapped to these nodes by
 * `to-ast.ts`; every later phase (checker, compiler, printer, graph) reads only these types.
 *
 * Nodes are readonly plain objects tagged by `kind`, each with the `span` of source it came from.
 * A node built from a draft with syntax errors may be partial: recovery fills what it can, and a
 * missing name is an empty `text` at the position where it was expected.
 */

/** A position in a source file: 1-based line and column (in UTF-16 code units), 0-based offset. */
export interface Pos {
  readonly line: number;
  readonly col: number;
  readonly offset: number;
}

/** A half-open source range: `end` is the position just after the last character. */
export interface Span {
  readonly start: Pos;
  readonly end: Pos;
}

/** An identifier as written, e.g. a state name `待派单` or a field `电话`. */
export interface Name {
  readonly kind: 'name';
  readonly text: string;
  readonly span: Span;
}

/** A quoted string as written, with escapes resolved. */
export interface Str {
  readonly kind: 'str';
  readonly value: string;
  readonly span: Span;
}

// ---------------------------------------------------------------------------------------------
// Expressions

export type BinaryOp =
  | 'or' | 'and' | '??'
  | '==' | '!=' | '<' | '<=' | '>' | '>='
  | 'in'
  | '+' | '-' | '*' | '/' | '%';

export type UnaryOp = 'not' | '-';

export interface NumberLit { readonly kind: 'number'; readonly value: number; readonly span: Span }
/** `bare` is true for an unquoted word in a decision-table cell, which reads as text. */
export interface StringLit { readonly kind: 'string'; readonly value: string; readonly bare: boolean; readonly span: Span }
export interface BoolLit { readonly kind: 'bool'; readonly value: boolean; readonly span: Span }
export interface NullLit { readonly kind: 'null'; readonly span: Span }
/** `2 workdays`, `24 hours`, `3 天`: the unit is checked against the known duration units. */
export interface DurationLit { readonly kind: 'duration'; readonly amount: number; readonly unit: Name; readonly span: Span }
/** A bare name: a payload field, a built-in (`actor`, `now`, `unit`, `submitter`), a rule table or function. `case` is a Ref too. */
export interface Ref { readonly kind: 'ref'; readonly name: Name; readonly span: Span }
/** `a.b`: access on null gives null, so field access never fails. */
export interface Member { readonly kind: 'member'; readonly object: Expr; readonly property: Name; readonly span: Span }
export interface Index { readonly kind: 'index'; readonly object: Expr; readonly index: Expr; readonly span: Span }
export interface Call { readonly kind: 'call'; readonly callee: Name; readonly args: readonly Expr[]; readonly span: Span }
export interface Unary { readonly kind: 'unary'; readonly op: UnaryOp; readonly operand: Expr; readonly span: Span }
export interface Binary { readonly kind: 'binary'; readonly op: BinaryOp; readonly left: Expr; readonly right: Expr; readonly span: Span }
export interface Conditional { readonly kind: 'if'; readonly test: Expr; readonly then: Expr; readonly else: Expr; readonly span: Span }
export interface ListLit { readonly kind: 'list'; readonly items: readonly Expr[]; readonly span: Span }
/** Stands where recovery could not parse an expression; the checker says nothing more about it. */
export interface ErrorExpr { readonly kind: 'error'; readonly span: Span }

export type Expr =
  | NumberLit | StringLit | BoolLit | NullLit | DurationLit
  | Ref | Member | Index | Call | Unary | Binary | Conditional | ListLit | ErrorExpr;

export type ExprKind = Expr['kind'];

// ---------------------------------------------------------------------------------------------
// Types of case data, payloads and rule columns

/** `text`, `number`, `org`, or a type declared with `type X = …`; resolved by the checker. */
export interface NamedType { readonly kind: 'named'; readonly name: Name; readonly span: Span }
/** `one of 维修, 养老, 其他` */
export interface EnumType { readonly kind: 'enum'; readonly members: readonly Name[]; readonly span: Span }
/** `list of text` */
export interface ListType { readonly kind: 'listOf'; readonly item: TypeExpr; readonly span: Span }
/** `record { a: text, b: number? }` */
export interface RecordType { readonly kind: 'record'; readonly fields: readonly FieldDecl[]; readonly span: Span }

export type TypeExpr = NamedType | EnumType | ListType | RecordType;

/** Validation written after a field's type. */
export type Constraint =
  | { readonly kind: 'matches'; readonly pattern: Str; readonly span: Span }
  | { readonly kind: 'range'; readonly min: Expr; readonly max: Expr; readonly span: Span }
  | { readonly kind: 'length'; readonly min: Expr; readonly max: Expr; readonly span: Span };

/** `电话: text matches "^1[0-9]{10}$"`, `单位: org?`, `积分: number = 0` */
export interface FieldDecl {
  readonly kind: 'field';
  readonly name: Name;
  readonly label?: Str;
  readonly type: TypeExpr;
  readonly optional: boolean;
  readonly constraints: readonly Constraint[];
  readonly default?: Expr;
  readonly span: Span;
}

// ---------------------------------------------------------------------------------------------
// Who may send an event

/** `社区书记` or `单位书记 of case.单位`: a role held in that unit (default: the case's responsible unit) or an ancestor. */
export interface RoleWho { readonly kind: 'role'; readonly role: Name; readonly of?: Expr; readonly span: Span }
/** `case.党员`, `submitter`: the one person held there. */
export interface PersonWho { readonly kind: 'person'; readonly expr: Expr; readonly span: Span }
/** `anyone`: any authenticated actor (and, at start, a resident with no account). */
export interface AnyoneWho { readonly kind: 'anyone'; readonly span: Span }

export type Who = RoleWho | PersonWho | AnyoneWho;

// ---------------------------------------------------------------------------------------------
// Actions: data updates and effects the engine carries out after commit

/** `set case.单位 = 单位` */
export interface SetAction { readonly kind: 'set'; readonly target: Expr; readonly value: Expr; readonly span: Span }
/** `notify 社区书记 of case.社区 "有新的心愿待派单"` */
export interface NotifyAction { readonly kind: 'notify'; readonly who: Who; readonly message: Str; readonly span: Span }
/** `credit 10 points to case.党员 "完成心愿"`; `credit 2 hours to …` credits the time bank. */
export interface CreditAction {
  readonly kind: 'credit';
  readonly amount: Expr;
  readonly unit: 'points' | 'hours';
  readonly to: Expr;
  readonly reason?: Str;
  readonly span: Span;
}
/** `emit "order.closed"` or `emit "order.closed" with case.评价`: a webhook event. */
export interface EmitAction { readonly kind: 'emit'; readonly topic: Str; readonly payload?: Expr; readonly span: Span }
/** `escalate`: the responsible unit becomes its parent (上报). */
export interface EscalateAction { readonly kind: 'escalate'; readonly span: Span }
/** `reassign to case.单位`: the responsible unit becomes the given unit. */
export interface ReassignAction { readonly kind: 'reassign'; readonly to: Expr; readonly span: Span }
/** `extend 3 workdays`: the state's deadlines move later by this much (延期). */
export interface ExtendAction { readonly kind: 'extend'; readonly by: Expr; readonly span: Span }

export type Action = SetAction | NotifyAction | CreditAction | EmitAction | EscalateAction | ReassignAction | ExtendAction;
export type ActionKind = Action['kind'];

// ---------------------------------------------------------------------------------------------
// Transitions

/**
 * `-> 办理 when case.满意 >= 3`, `-> 办理 otherwise`, or plain `-> 办理`. Actions written after a
 * target (`-> 办结 when 分 >= 3 credit 5 points to case.党员`) run only when that target is taken.
 */
export interface Target {
  readonly kind: 'target';
  readonly state: Name;
  readonly when?: Expr;
  readonly otherwise: boolean;
  readonly actions: readonly Action[];
  readonly span: Span;
}

/** `require unit.parent == case.社区 "只能派给本社区的单位"`: the event is refused unless it holds. */
export interface Require { readonly kind: 'require'; readonly test: Expr; readonly message?: Str; readonly span: Span }

/** `with { 原因: text }` or `with 评分` (a declared record type). */
export type Payload =
  | { readonly kind: 'fields'; readonly fields: readonly FieldDecl[]; readonly span: Span }
  | { readonly kind: 'typeRef'; readonly name: Name; readonly span: Span };

/** `on 派单 "派单" by 社区书记 with {…} require … set … -> 待接单`. No target: the case stays where it is. */
export interface OnClause {
  readonly kind: 'on';
  readonly event: Name;
  readonly label?: Str;
  readonly who: readonly Who[];
  readonly payload?: Payload;
  readonly requires: readonly Require[];
  readonly actions: readonly Action[];
  readonly targets: readonly Target[];
  readonly span: Span;
}

/** `remind at 80% notify 社区书记 "即将超时"` inside an `after` clause. */
export interface Reminder { readonly kind: 'remind'; readonly percent: number; readonly actions: readonly Action[]; readonly span: Span }

/** `after 2 workdays remind at 80% … escalate -> 待派单`. No target: the case stays (and the timer does not re-arm). */
export interface AfterClause {
  readonly kind: 'after';
  readonly duration: Expr;
  readonly reminders: readonly Reminder[];
  readonly actions: readonly Action[];
  readonly targets: readonly Target[];
  readonly span: Span;
}

export type JoinRule =
  | { readonly kind: 'all'; readonly span: Span }
  | { readonly kind: 'any'; readonly span: Span }
  | { readonly kind: 'atLeast'; readonly count: Expr; readonly span: Span };

/**
 * 吹哨报到: `each 部门 in case.被叫部门 on 报到 by 部门负责人 of 部门 … join all within 2 workdays -> 处置 timeout -> 督办`.
 * Every unit in the list must send the event (once each); when the join holds the case moves on;
 * when the deadline passes first, the units that had not acted are recorded as missed.
 */
export interface EachClause {
  readonly kind: 'each';
  readonly variable: Name;
  readonly items: Expr;
  readonly on: OnClause;
  readonly join: JoinRule;
  readonly within?: Expr;
  readonly targets: readonly Target[];
  readonly timeoutActions: readonly Action[];
  readonly timeoutTargets: readonly Target[];
  readonly span: Span;
}

export type Clause = OnClause | AfterClause | EachClause;

export interface StateDecl {
  readonly kind: 'state';
  readonly name: Name;
  readonly label?: Str;
  readonly final: boolean;
  readonly clauses: readonly Clause[];
  readonly span: Span;
}

// ---------------------------------------------------------------------------------------------
// Decision tables

/** One cell of a rule row's input columns. */
export type Cell =
  | { readonly kind: 'any'; readonly span: Span }
  | { readonly kind: 'compare'; readonly op: '==' | '!=' | '<' | '<=' | '>' | '>='; readonly value: Expr; readonly span: Span }
  | { readonly kind: 'range'; readonly min: Expr; readonly max: Expr; readonly span: Span }
  | { readonly kind: 'oneOf'; readonly values: readonly Expr[]; readonly span: Span };

export interface RuleRow {
  readonly kind: 'row';
  /** Input cells then output cells, as written; the checker splits them by the header's arity. */
  readonly cells: readonly Cell[];
  readonly isDefault: boolean;
  readonly span: Span;
}

export type HitPolicy = 'unique' | 'first' | 'collect';

/** A column of a rule table's header: `类别: one of 平安, 维修`. */
export interface ColumnDecl { readonly kind: 'column'; readonly name: Name; readonly type: TypeExpr; readonly span: Span }

/** `rules 分拨 (类别: …, 严重程度: …) -> (部门: org, 时限: duration) first | … |` */
export interface RulesDecl {
  readonly kind: 'rules';
  readonly name: Name;
  readonly label?: Str;
  readonly inputs: readonly ColumnDecl[];
  readonly outputs: readonly ColumnDecl[];
  readonly hit: HitPolicy;
  readonly hitSpan?: Span;
  readonly rows: readonly RuleRow[];
  readonly span: Span;
}

// ---------------------------------------------------------------------------------------------
// Top-level declarations

/** `workflow 五单服务 "五单服务闭环"` */
export interface WorkflowHeader { readonly kind: 'workflow'; readonly name: Name; readonly label?: Str; readonly span: Span }
/** `roles 居民 "居民群众", 社区书记 "社区党组织书记"` */
export interface RoleDecl { readonly kind: 'role'; readonly name: Name; readonly label?: Str; readonly span: Span }
/** `import rules 分拨, 评分 from "shared/分拨.wf"` */
export interface ImportDecl { readonly kind: 'import'; readonly names: readonly Name[]; readonly from: Str; readonly span: Span }
/** `type 评分 = record { … }` */
export interface TypeDecl { readonly kind: 'type'; readonly name: Name; readonly type: TypeExpr; readonly span: Span }
/** `case { … }` */
export interface CaseDecl { readonly kind: 'case'; readonly fields: readonly FieldDecl[]; readonly span: Span }
/** `start 待派单 by anyone`: where a new case begins and who may start one. */
export interface StartDecl { readonly kind: 'start'; readonly state: Name; readonly who: readonly Who[]; readonly span: Span }

export type Decl = WorkflowHeader | RoleDecl | ImportDecl | TypeDecl | CaseDecl | StartDecl | StateDecl | RulesDecl;

/**
 * A whole source file. A workflow file has one `workflow` header; a library file (shared rule
 * tables and types) has none. Declarations keep their source order.
 */
export interface Document {
  readonly kind: 'document';
  readonly file: string;
  readonly decls: readonly Decl[];
  readonly span: Span;
}

/** Every node kind, so exhaustive visitors (`Record<NodeKind, …>`) fail to compile when one is added. */
export type Node = Document | Decl | Clause | Action | Expr | TypeExpr | Target | Require | Reminder | FieldDecl | ColumnDecl | RuleRow | Name | Str;
