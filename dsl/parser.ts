/**
 * The grammar of the workflow language, as a chevrotain CST parser with error recovery on.
 * This module is grammar only: `to-ast.ts` gives the tree its meaning, so the grammar can
 * change without touching the phases after it. docs/language.md describes the language.
 */
import { CstParser, tokenMatcher, type IToken, type TokenType } from 'chevrotain';
import {
  allTokens, K, Identifier, StringLiteral, NumberLiteral,
  Arrow, DotDot, Dot, Coalesce, Question, Comma, Colon,
  Eq, Neq, Le, Ge, Lt, Gt, Assign, AndOp, OrOp, NotOp,
  Plus, Minus, Star, Slash, Percent, LParen, RParen, LCurly, RCurly, LBracket, RBracket, Pipe,
} from './tokens.ts';
import { DURATION_UNITS } from './types.ts';

function isFieldStart(a: IToken, b: IToken, c: IToken): boolean {
  // `name:` or `name "label":` begins a field or column, so the word before it is not an enum member or a unit.
  return tokenMatcher(a, Identifier) && (tokenMatcher(b, Colon) || (tokenMatcher(b, StringLiteral) && tokenMatcher(c, Colon)));
}

export class WorkflowParser extends CstParser {
  constructor() {
    super(allTokens, { recoveryEnabled: true, maxLookahead: 4, nodeLocationTracking: 'full' });
    this.performSelfAnalysis();
  }

  // ---- top level -------------------------------------------------------------------------

  public document = this.RULE('document', () => {
    this.MANY(() => this.SUBRULE(this.decl));
  });

  private decl = this.RULE('decl', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.workflowHeader) },
      { ALT: () => this.SUBRULE(this.rolesDecl) },
      { ALT: () => this.SUBRULE(this.importDecl) },
      { ALT: () => this.SUBRULE(this.typeDecl) },
      { ALT: () => this.SUBRULE(this.caseDecl) },
      { ALT: () => this.SUBRULE(this.startDecl) },
      { ALT: () => this.SUBRULE(this.stateDecl) },
      { ALT: () => this.SUBRULE(this.rulesDecl) },
    ]);
  });

  private workflowHeader = this.RULE('workflowHeader', () => {
    this.CONSUME(K.workflow);
    this.CONSUME(Identifier);
    this.OPTION(() => this.CONSUME(StringLiteral));
  });

  /** `roles 甲, 乙 "说明", 丙`: commas between roles are optional, so a forgotten one is no error. */
  private rolesDecl = this.RULE('rolesDecl', () => {
    this.CONSUME(K.roles);
    this.SUBRULE(this.roleItem);
    this.MANY(() => {
      this.OPTION(() => this.CONSUME(Comma));
      this.SUBRULE2(this.roleItem);
    });
  });

  private roleItem = this.RULE('roleItem', () => {
    this.CONSUME(Identifier);
    this.OPTION(() => this.CONSUME(StringLiteral));
  });

  private importDecl = this.RULE('importDecl', () => {
    this.CONSUME(K.import);
    this.OPTION(() => this.CONSUME(K.rules));
    this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.CONSUME(Identifier) });
    this.CONSUME(K.from);
    this.CONSUME(StringLiteral);
  });

  private typeDecl = this.RULE('typeDecl', () => {
    this.CONSUME(K.type);
    this.CONSUME(Identifier);
    this.CONSUME(Assign);
    this.SUBRULE(this.typeExpr);
  });

  private caseDecl = this.RULE('caseDecl', () => {
    this.CONSUME(K.case);
    this.CONSUME(LCurly);
    this.SUBRULE(this.fieldList);
    this.CONSUME(RCurly);
  });

  private startDecl = this.RULE('startDecl', () => {
    this.CONSUME(K.start);
    this.CONSUME(Identifier);
    this.OPTION(() => {
      this.CONSUME(K.by);
      this.SUBRULE(this.whoList);
    });
  });

  private stateDecl = this.RULE('stateDecl', () => {
    this.OR([
      { ALT: () => this.CONSUME(K.state) },
      { ALT: () => this.CONSUME(K.final) },
    ]);
    this.CONSUME(Identifier);
    this.OPTION(() => this.CONSUME(StringLiteral));
    this.MANY(() => this.SUBRULE(this.clause));
  });

  // ---- fields and types ------------------------------------------------------------------

  private fieldList = this.RULE('fieldList', () => {
    this.MANY(() => {
      this.SUBRULE(this.field);
      this.OPTION(() => this.CONSUME(Comma));
    });
  });

  private field = this.RULE('field', () => {
    this.CONSUME(Identifier);
    this.OPTION(() => this.CONSUME(StringLiteral));
    this.CONSUME(Colon);
    this.SUBRULE(this.typeExpr);
    this.OPTION2(() => this.CONSUME(Question));
    this.MANY(() => this.SUBRULE(this.constraint));
    this.OPTION3(() => {
      this.CONSUME(Assign);
      this.SUBRULE(this.expression);
    });
  });

  private typeExpr = this.RULE('typeExpr', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(K.one);
          this.CONSUME(K.of);
          this.CONSUME(Identifier);
          this.MANY({
            GATE: () => tokenMatcher(this.LA(1), Comma) && tokenMatcher(this.LA(2), Identifier) && !isFieldStart(this.LA(2), this.LA(3), this.LA(4)),
            DEF: () => {
              this.CONSUME(Comma);
              this.CONSUME2(Identifier);
            },
          });
        },
      },
      {
        ALT: () => {
          this.CONSUME(K.list);
          this.CONSUME2(K.of);
          this.SUBRULE(this.typeExpr);
        },
      },
      {
        ALT: () => {
          this.CONSUME(K.record);
          this.CONSUME(LCurly);
          this.SUBRULE(this.fieldList);
          this.CONSUME(RCurly);
        },
      },
      { ALT: () => this.CONSUME3(Identifier) },
    ]);
  });

  private constraint = this.RULE('constraint', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(K.matches);
          this.CONSUME(StringLiteral);
        },
      },
      {
        ALT: () => {
          this.OR2([{ ALT: () => this.CONSUME(K.range) }, { ALT: () => this.CONSUME(K.length) }]);
          this.SUBRULE(this.operand);
          this.CONSUME(DotDot);
          this.SUBRULE2(this.operand);
        },
      },
    ]);
  });

  // ---- who -------------------------------------------------------------------------------

  private whoList = this.RULE('whoList', () => {
    this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.who) });
  });

  private who = this.RULE('who', () => {
    this.OR([
      { ALT: () => this.CONSUME(K.anyone) },
      { ALT: () => this.SUBRULE(this.postfix) , GATE: () => tokenMatcher(this.LA(1), K.case) || tokenMatcher(this.LA(2), Dot) },
      {
        ALT: () => {
          this.CONSUME(Identifier);
          this.OPTION(() => {
            this.CONSUME(K.of);
            this.SUBRULE2(this.postfix);
          });
        },
      },
    ]);
  });

  // ---- clauses ---------------------------------------------------------------------------

  private clause = this.RULE('clause', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.onClause) },
      { ALT: () => this.SUBRULE(this.afterClause) },
      { ALT: () => this.SUBRULE(this.eachClause) },
    ]);
  });

  private onClause = this.RULE('onClause', () => {
    this.SUBRULE(this.onHead);
    this.MANY(() => this.SUBRULE(this.target));
  });

  /** `on E "label" by … with … require … actions…`, shared by plain and multi-instance events. */
  private onHead = this.RULE('onHead', () => {
    this.CONSUME(K.on);
    this.CONSUME(Identifier);
    this.OPTION(() => this.CONSUME(StringLiteral));
    this.MANY(() => {
      this.OR([
        {
          ALT: () => {
            this.CONSUME(K.by);
            this.SUBRULE(this.whoList);
          },
        },
        {
          ALT: () => {
            this.CONSUME(K.with);
            this.SUBRULE(this.payload);
          },
        },
      ]);
    });
    this.MANY2(() => {
      this.OR2([
        { ALT: () => this.SUBRULE(this.requireClause) },
        { ALT: () => this.SUBRULE(this.action) },
      ]);
    });
  });

  private payload = this.RULE('payload', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(LCurly);
          this.SUBRULE(this.fieldList);
          this.CONSUME(RCurly);
        },
      },
      { ALT: () => this.CONSUME(Identifier) },
    ]);
  });

  private requireClause = this.RULE('requireClause', () => {
    this.CONSUME(K.require);
    this.SUBRULE(this.expression);
    this.OPTION(() => this.CONSUME(StringLiteral));
  });

  private afterClause = this.RULE('afterClause', () => {
    this.CONSUME(K.after);
    this.SUBRULE(this.expression);
    this.MANY(() => {
      this.OR([
        { ALT: () => this.SUBRULE(this.reminder) },
        { ALT: () => this.SUBRULE(this.action) },
      ]);
    });
    this.MANY2(() => this.SUBRULE(this.target));
  });

  /** `remind 社区书记 at 80% "派单即将超时"` */
  private reminder = this.RULE('reminder', () => {
    this.CONSUME(K.remind);
    this.SUBRULE(this.who);
    this.CONSUME(K.at);
    this.CONSUME(NumberLiteral);
    this.CONSUME(Percent);
    this.CONSUME(StringLiteral);
  });

  private eachClause = this.RULE('eachClause', () => {
    this.CONSUME(K.each);
    this.CONSUME(Identifier);
    this.CONSUME(K.in);
    this.SUBRULE(this.expression);
    this.SUBRULE(this.onHead);
    this.CONSUME(K.join);
    this.OR([
      { ALT: () => this.CONSUME(K.all) },
      { ALT: () => this.CONSUME(K.any) },
      {
        ALT: () => {
          this.CONSUME(K.at);
          this.CONSUME(K.least);
          this.SUBRULE2(this.operand);
        },
      },
    ]);
    this.OPTION(() => {
      this.CONSUME(K.within);
      this.SUBRULE3(this.expression);
    });
    this.MANY(() => this.SUBRULE(this.target));
    this.OPTION2(() => {
      this.CONSUME(K.timeout);
      this.MANY2(() => this.SUBRULE(this.action));
      this.MANY3(() => this.SUBRULE2(this.target));
    });
  });

  private target = this.RULE('target', () => {
    this.CONSUME(Arrow);
    this.CONSUME(Identifier);
    this.OPTION(() => {
      this.OR([
        {
          ALT: () => {
            this.CONSUME(K.when);
            this.SUBRULE(this.expression);
          },
        },
        { ALT: () => this.CONSUME(K.otherwise) },
      ]);
    });
    this.MANY(() => this.SUBRULE(this.action));
  });

  private action = this.RULE('action', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(K.set);
          this.SUBRULE(this.postfix);
          this.CONSUME(Assign);
          this.SUBRULE(this.expression);
        },
      },
      {
        ALT: () => {
          this.CONSUME(K.notify);
          this.SUBRULE(this.who);
          this.CONSUME(StringLiteral);
        },
      },
      {
        ALT: () => {
          this.CONSUME(K.credit);
          this.SUBRULE2(this.expression);
          this.OPTION(() => this.CONSUME(K.points));
          this.CONSUME(K.to);
          this.SUBRULE3(this.expression);
          this.OPTION2(() => this.CONSUME2(StringLiteral));
        },
      },
      {
        ALT: () => {
          this.CONSUME(K.emit);
          this.CONSUME3(StringLiteral);
          this.OPTION3(() => {
            this.CONSUME(K.with);
            this.SUBRULE4(this.expression);
          });
        },
      },
      { ALT: () => this.CONSUME(K.escalate) },
      {
        ALT: () => {
          this.CONSUME(K.reassign);
          this.CONSUME2(K.to);
          this.SUBRULE5(this.expression);
        },
      },
      {
        ALT: () => {
          this.CONSUME(K.extend);
          this.SUBRULE6(this.expression);
        },
      },
    ]);
  });

  // ---- decision tables -------------------------------------------------------------------

  private rulesDecl = this.RULE('rulesDecl', () => {
    this.CONSUME(K.rules);
    this.CONSUME(Identifier);
    this.OPTION(() => this.CONSUME(StringLiteral));
    this.CONSUME(LParen);
    this.SUBRULE(this.columns);
    this.CONSUME(RParen);
    this.CONSUME(Arrow);
    this.CONSUME2(LParen);
    this.SUBRULE2(this.columns);
    this.CONSUME2(RParen);
    this.OPTION2(() => {
      this.OR([
        { ALT: () => this.CONSUME(K.unique) },
        { ALT: () => this.CONSUME(K.first) },
        { ALT: () => this.CONSUME(K.collect) },
      ]);
    });
    this.MANY(() => this.SUBRULE(this.ruleRow));
  });

  private columns = this.RULE('columns', () => {
    this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.column) });
  });

  private column = this.RULE('column', () => {
    this.CONSUME(Identifier);
    this.CONSUME(Colon);
    this.SUBRULE(this.typeExpr);
  });

  /** `| 平安 | 高 | 派出所 | 2 hours |` or `default | 街道综治中心 | 3 workdays |`. Two pipes in a row end one row and begin the next. */
  private ruleRow = this.RULE('ruleRow', () => {
    this.OPTION(() => this.CONSUME(K.default));
    this.CONSUME(Pipe);
    this.AT_LEAST_ONE(() => {
      this.SUBRULE(this.cell);
      this.CONSUME2(Pipe);
    });
  });

  private cell = this.RULE('cell', () => {
    this.OR([
      { ALT: () => this.CONSUME(Star) },
      {
        ALT: () => {
          this.OR2([
            { ALT: () => this.CONSUME(Eq) },
            { ALT: () => this.CONSUME(Neq) },
            { ALT: () => this.CONSUME(Le) },
            { ALT: () => this.CONSUME(Ge) },
            { ALT: () => this.CONSUME(Lt) },
            { ALT: () => this.CONSUME(Gt) },
          ]);
          this.SUBRULE(this.cellAtom);
        },
      },
      {
        ALT: () => {
          this.SUBRULE2(this.cellAtom);
          this.OPTION(() => {
            this.OR3([
              {
                ALT: () => {
                  this.CONSUME(DotDot);
                  this.SUBRULE3(this.cellAtom);
                },
              },
              {
                ALT: () => {
                  this.AT_LEAST_ONE(() => {
                    this.CONSUME(Comma);
                    this.SUBRULE4(this.cellAtom);
                  });
                },
              },
            ]);
          });
        },
      },
    ]);
  });

  private cellAtom = this.RULE('cellAtom', () => {
    this.OR([
      {
        ALT: () => {
          this.OPTION(() => this.CONSUME(Minus));
          this.CONSUME(NumberLiteral);
          this.OPTION2(() => this.CONSUME(Identifier));
        },
      },
      { ALT: () => this.CONSUME(StringLiteral) },
      { ALT: () => this.CONSUME2(Identifier) },
      { ALT: () => this.CONSUME(K.true) },
      { ALT: () => this.CONSUME(K.false) },
      { ALT: () => this.CONSUME(K.null) },
    ]);
  });

  // ---- expressions (lowest precedence first) --------------------------------------------

  public expression = this.RULE('expression', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.conditional) },
      { ALT: () => this.SUBRULE(this.binaryChain) },
    ]);
  });

  private conditional = this.RULE('conditional', () => {
    this.CONSUME(K.if);
    this.SUBRULE(this.expression);
    this.CONSUME(K.then);
    this.SUBRULE2(this.expression);
    this.CONSUME(K.else);
    this.SUBRULE3(this.expression);
  });

  /**
   * Operands and binary operators as a flat list; `to-ast.ts` applies precedence. A flat rule keeps
   * the tree shallow: one node per operand instead of one per precedence level.
   */
  private binaryChain = this.RULE('binaryChain', () => {
    this.SUBRULE(this.operand);
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(K.or) },
        { ALT: () => this.CONSUME(OrOp) },
        { ALT: () => this.CONSUME(K.and) },
        { ALT: () => this.CONSUME(AndOp) },
        { ALT: () => this.CONSUME(Eq) },
        { ALT: () => this.CONSUME(Neq) },
        { ALT: () => this.CONSUME(Le) },
        { ALT: () => this.CONSUME(Ge) },
        { ALT: () => this.CONSUME(Lt) },
        { ALT: () => this.CONSUME(Gt) },
        { ALT: () => this.CONSUME(K.in) },
        { ALT: () => this.CONSUME(Coalesce) },
        { ALT: () => this.CONSUME(Plus) },
        { ALT: () => this.CONSUME(Minus) },
        { ALT: () => this.CONSUME(Star) },
        { ALT: () => this.CONSUME(Slash) },
        { ALT: () => this.CONSUME(Percent) },
      ]);
      this.SUBRULE2(this.operand);
    });
  });

  /** A value with its prefix operators: `not`, `!`, `-`. */
  private operand = this.RULE('operand', () => {
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(K.not) },
        { ALT: () => this.CONSUME(NotOp) },
        { ALT: () => this.CONSUME(Minus) },
      ]);
    });
    this.SUBRULE(this.postfix);
  });

  private postfix = this.RULE('postfix', () => {
    this.SUBRULE(this.primary);
    this.MANY(() => {
      this.OR([
        {
          ALT: () => {
            this.CONSUME(Dot);
            this.CONSUME(Identifier);
          },
        },
        {
          ALT: () => {
            this.CONSUME(LBracket);
            this.SUBRULE(this.expression);
            this.CONSUME(RBracket);
          },
        },
      ]);
    });
  });

  private primary = this.RULE('primary', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(NumberLiteral);
          // `2 workdays` is a duration; a word that begins the next field (`名称:`) is not its unit.
          this.OPTION({
            GATE: () => tokenMatcher(this.LA(1), Identifier) &&
              (this.LA(1).image in DURATION_UNITS || !isFieldStart(this.LA(1), this.LA(2), this.LA(3))),
            DEF: () => this.CONSUME(Identifier),
          });
        },
      },
      { ALT: () => this.CONSUME(StringLiteral) },
      { ALT: () => this.CONSUME(K.true) },
      { ALT: () => this.CONSUME(K.false) },
      { ALT: () => this.CONSUME(K.null) },
      { ALT: () => this.CONSUME(K.case) },
      {
        ALT: () => {
          this.CONSUME2(Identifier);
          this.OPTION2(() => {
            this.CONSUME(LParen);
            this.MANY_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.expression) });
            this.CONSUME(RParen);
          });
        },
      },
      {
        ALT: () => {
          this.CONSUME2(LParen);
          this.SUBRULE2(this.expression);
          this.CONSUME2(RParen);
        },
      },
      {
        ALT: () => {
          this.CONSUME(LBracket);
          this.MANY_SEP2({ SEP: Comma, DEF: () => this.SUBRULE3(this.expression) });
          this.CONSUME(RBracket);
        },
      },
    ]);
  });
}

/** One parser instance is reused: chevrotain parsers are stateful but cheap to reset via `input`. */
export const parser = new WorkflowParser();

export type { TokenType };
