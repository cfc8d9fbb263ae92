/**
 * The expression language of online features. Workers forbid eval/new Function, and a feature
 * definition is data written through an admin API, so computations are parsed by this small
 * recursive-descent parser into an AST once (cached by source text) and evaluated by walking it.
 *
 *   literals     1, 2.5e3, 'text', "text", true, false, null
 *   names        other features of the same group (their current values)
 *   operators    + - * / %   < <= > >= == !=   && || !   cond ? a : b   ( )
 *   functions    log(x) log1p(x) exp(x) sqrt(x) abs(x) floor(x) ceil(x) round(x)
 *                min(a, b, ...) max(a, b, ...) clamp(x, lo, hi) coalesce(a, b, ...) ratio(a, b)
 *
 * Missing values are null and propagate: arithmetic, comparisons and functions of a null give
 * null (coalesce and the logical operators excepted), and so do results that are not real numbers
 * (x / 0, log of a non-positive number, sqrt of a negative one). A null result is a missing
 * feature, which the feature's fallback policy then handles; it is never turned into zero.
 * Bounds: 2,000 characters, nesting depth 64, 64 arguments per call.
 */

export type Value = number | string | boolean | null;

export type Node =
  | { k: "lit"; v: Value }
  | { k: "ref"; name: string }
  | { k: "un"; op: "-" | "!"; a: Node }
  | { k: "bin"; op: string; a: Node; b: Node }
  | { k: "cond"; c: Node; a: Node; b: Node }
  | { k: "call"; fn: string; args: Node[] };

export class ExpressionError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(`${message} at position ${position}`);
    this.name = "ExpressionError";
  }
}

const MAX_LENGTH = 2000;
const MAX_DEPTH = 64;

/** Function name -> [min args, max args]. */
const FUNCTIONS: Record<string, [number, number]> = {
  log: [1, 1],
  log1p: [1, 1],
  exp: [1, 1],
  sqrt: [1, 1],
  abs: [1, 1],
  floor: [1, 1],
  ceil: [1, 1],
  round: [1, 1],
  min: [1, 64],
  max: [1, 64],
  clamp: [3, 3],
  coalesce: [1, 64],
  ratio: [2, 2],
};

type Token = { t: "num"; v: number; at: number } | { t: "str"; v: string; at: number } | { t: "id"; v: string; at: number } | { t: "op"; v: string; at: number } | { t: "end"; at: number };

const OPS = ["<=", ">=", "==", "!=", "&&", "||", "+", "-", "*", "/", "%", "<", ">", "!", "?", ":", "(", ")", ","];

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const ch = src[i];
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    if (/[0-9.]/.test(ch)) {
      const m = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/.exec(src.slice(i));
      if (!m) throw new ExpressionError(`malformed number`, i);
      out.push({ t: "num", v: Number(m[0]), at: i });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z_]/.test(ch)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))!;
      out.push({ t: "id", v: m[0], at: i });
      i += m[0].length;
      continue;
    }
    if (ch === "'" || ch === '"') {
      const end = src.indexOf(ch, i + 1);
      if (end < 0) throw new ExpressionError("unterminated string", i);
      out.push({ t: "str", v: src.slice(i + 1, end), at: i });
      i = end + 1;
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (!op) throw new ExpressionError(`unexpected character '${ch}'`, i);
    out.push({ t: "op", v: op, at: i });
    i += op.length;
  }
  out.push({ t: "end", at: src.length });
  return out;
}

/** Binary operator precedence levels, loosest first. */
const LEVELS: string[][] = [["||"], ["&&"], ["==", "!="], ["<", "<=", ">", ">="], ["+", "-"], ["*", "/", "%"]];

export function parse(src: string): Node {
  if (src.length > MAX_LENGTH) throw new ExpressionError(`expression longer than ${MAX_LENGTH} characters`, MAX_LENGTH);
  const tokens = tokenize(src);
  let pos = 0;
  const peek = () => tokens[pos];
  const isOp = (v: string) => {
    const t = tokens[pos];
    return t.t === "op" && t.v === v;
  };
  const expect = (v: string) => {
    if (!isOp(v)) throw new ExpressionError(`expected '${v}'`, peek().at);
    pos++;
  };

  function expr(depth: number): Node {
    if (depth > MAX_DEPTH) throw new ExpressionError(`nesting deeper than ${MAX_DEPTH}`, peek().at);
    const c = binary(0, depth);
    if (isOp("?")) {
      pos++;
      const a = expr(depth + 1);
      expect(":");
      const b = expr(depth + 1);
      return { k: "cond", c, a, b };
    }
    return c;
  }

  function binary(level: number, depth: number): Node {
    if (level === LEVELS.length) return unary(depth);
    let left = binary(level + 1, depth);
    for (;;) {
      const t = peek();
      if (t.t !== "op" || !LEVELS[level].includes(t.v)) return left;
      pos++;
      left = { k: "bin", op: t.v, a: left, b: binary(level + 1, depth) };
    }
  }

  function unary(depth: number): Node {
    if (depth > MAX_DEPTH) throw new ExpressionError(`nesting deeper than ${MAX_DEPTH}`, peek().at);
    if (isOp("-") || isOp("!")) {
      const op = (peek() as { v: string }).v as "-" | "!";
      pos++;
      return { k: "un", op, a: unary(depth + 1) };
    }
    return primary(depth);
  }

  function primary(depth: number): Node {
    const t = peek();
    if (t.t === "num") {
      pos++;
      return { k: "lit", v: t.v };
    }
    if (t.t === "str") {
      pos++;
      return { k: "lit", v: t.v };
    }
    if (t.t === "op" && t.v === "(") {
      pos++;
      const inner = expr(depth + 1);
      expect(")");
      return inner;
    }
    if (t.t === "id") {
      pos++;
      if (t.v === "true" || t.v === "false") return { k: "lit", v: t.v === "true" };
      if (t.v === "null") return { k: "lit", v: null };
      if (isOp("(")) {
        const arity = FUNCTIONS[t.v];
        if (!arity) throw new ExpressionError(`unknown function '${t.v}' (known: ${Object.keys(FUNCTIONS).join(", ")})`, t.at);
        pos++;
        const args: Node[] = [];
        if (!isOp(")")) {
          for (;;) {
            args.push(expr(depth + 1));
            if (isOp(",")) {
              pos++;
              continue;
            }
            break;
          }
        }
        expect(")");
        if (args.length < arity[0] || args.length > arity[1]) {
          const want = arity[0] === arity[1] ? `${arity[0]}` : `${arity[0]} to ${arity[1]}`;
          throw new ExpressionError(`${t.v}() takes ${want} argument(s), got ${args.length}`, t.at);
        }
        return { k: "call", fn: t.v, args };
      }
      return { k: "ref", name: t.v };
    }
    if (t.t === "end") throw new ExpressionError("unexpected end of expression", t.at);
    throw new ExpressionError(`unexpected '${t.v}'`, t.at);
  }

  const root = expr(0);
  if (peek().t !== "end") throw new ExpressionError(`unexpected '${(peek() as { v: string }).v}' after the expression`, peek().at);
  return root;
}

/** Names of the features an expression reads. */
export function references(node: Node, into = new Set<string>()): Set<string> {
  switch (node.k) {
    case "ref":
      into.add(node.name);
      break;
    case "un":
      references(node.a, into);
      break;
    case "bin":
      references(node.a, into);
      references(node.b, into);
      break;
    case "cond":
      references(node.c, into);
      references(node.a, into);
      references(node.b, into);
      break;
    case "call":
      for (const a of node.args) references(a, into);
      break;
  }
  return into;
}

const real = (v: number): number | null => (Number.isFinite(v) ? v : null);
const num = (v: Value): number | null => (typeof v === "number" ? v : typeof v === "boolean" ? (v ? 1 : 0) : null);

export function evaluate(node: Node, lookup: (name: string) => Value): Value {
  switch (node.k) {
    case "lit":
      return node.v;
    case "ref":
      return lookup(node.name);
    case "un": {
      const a = evaluate(node.a, lookup);
      if (a === null) return null;
      if (node.op === "!") return typeof a === "boolean" ? !a : null;
      const n = num(a);
      return n === null ? null : -n;
    }
    case "cond": {
      const c = evaluate(node.c, lookup);
      if (c === null) return null;
      return evaluate(c === true || (typeof c === "number" && c !== 0) ? node.a : node.b, lookup);
    }
    case "bin":
      return binaryOp(node.op, node.a, node.b, lookup);
    case "call":
      return call(node.fn, node.args, lookup);
  }
}

function binaryOp(op: string, an: Node, bn: Node, lookup: (name: string) => Value): Value {
  if (op === "&&" || op === "||") {
    // Three-valued logic: false && null = false, true || null = true; otherwise null taints.
    const a = evaluate(an, lookup);
    if (op === "&&" && a === false) return false;
    if (op === "||" && a === true) return true;
    const b = evaluate(bn, lookup);
    if (op === "&&" && b === false) return false;
    if (op === "||" && b === true) return true;
    if (a === null || b === null) return null;
    return op === "&&" ? a === true && b === true : a === true || b === true;
  }
  const a = evaluate(an, lookup);
  const b = evaluate(bn, lookup);
  if (a === null || b === null) return null;
  if (op === "==") return a === b;
  if (op === "!=") return a !== b;
  if (typeof a === "string" && typeof b === "string") {
    if (op === "<") return a < b;
    if (op === "<=") return a <= b;
    if (op === ">") return a > b;
    if (op === ">=") return a >= b;
    return null;
  }
  const x = num(a);
  const y = num(b);
  if (x === null || y === null) return null;
  switch (op) {
    case "+":
      return real(x + y);
    case "-":
      return real(x - y);
    case "*":
      return real(x * y);
    case "/":
      return y === 0 ? null : real(x / y);
    case "%":
      return y === 0 ? null : real(x % y);
    case "<":
      return x < y;
    case "<=":
      return x <= y;
    case ">":
      return x > y;
    case ">=":
      return x >= y;
  }
  return null;
}

function call(fn: string, argNodes: Node[], lookup: (name: string) => Value): Value {
  if (fn === "coalesce") {
    for (const a of argNodes) {
      const v = evaluate(a, lookup);
      if (v !== null) return v;
    }
    return null;
  }
  const args: number[] = [];
  for (const a of argNodes) {
    const v = num(evaluate(a, lookup));
    if (v === null) return null;
    args.push(v);
  }
  const x = args[0];
  switch (fn) {
    case "log":
      return x > 0 ? Math.log(x) : null;
    case "log1p":
      return x > -1 ? Math.log1p(x) : null;
    case "exp":
      return real(Math.exp(x));
    case "sqrt":
      return x >= 0 ? Math.sqrt(x) : null;
    case "abs":
      return Math.abs(x);
    case "floor":
      return Math.floor(x);
    case "ceil":
      return Math.ceil(x);
    case "round":
      return Math.round(x);
    case "min":
      return Math.min(...args);
    case "max":
      return Math.max(...args);
    case "clamp":
      return args[1] > args[2] ? null : Math.min(Math.max(x, args[1]), args[2]);
    case "ratio":
      return args[1] === 0 ? null : real(x / args[1]);
  }
  return null;
}

const parsed = new Map<string, Node>();

/** Parses once per source text (bounded cache; definitions are few). */
export function compiled(src: string): Node {
  let node = parsed.get(src);
  if (!node) {
    node = parse(src);
    if (parsed.size >= 10_000) parsed.delete(parsed.keys().next().value!);
    parsed.set(src, node);
  }
  return node;
}
