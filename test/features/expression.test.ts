/**
 * The online-feature expression language: parsing (precedence, functions, errors with positions),
 * evaluation (null propagation, undefined operations give null, never zero), dependency
 * extraction, and cycle detection/ordering of the dependency graph.
 */
import { describe, expect, it } from "vitest";
import { checkAcyclic, plan } from "../../src/features/dag";
import { evaluate, ExpressionError, parse, references, type Value } from "../../src/features/expression";

const run = (src: string, vars: Record<string, Value> = {}) => evaluate(parse(src), (n) => (Object.hasOwn(vars, n) ? vars[n] : null));

describe("expression parser and evaluator", () => {
  it("follows arithmetic precedence and associativity", () => {
    expect(run("1 + 2 * 3")).toBe(7);
    expect(run("(1 + 2) * 3")).toBe(9);
    expect(run("10 - 4 - 3")).toBe(3);
    expect(run("2 * 3 % 4")).toBe(2);
    expect(run("-2 * -3")).toBe(6);
    expect(run("1.5e2 / 3")).toBe(50);
  });

  it("evaluates comparisons, logic and the conditional", () => {
    expect(run("a > 3 && b == 'x'", { a: 4, b: "x" })).toBe(true);
    expect(run("a > 3 ? 'high' : 'low'", { a: 1 })).toBe("low");
    expect(run("!(a <= 2) || false", { a: 1 })).toBe(false);
    expect(run("a != b", { a: 1, b: 2 })).toBe(true);
  });

  it("computes the functions as Math does", () => {
    const vars = { income: 129, debt: 20, amount: 800, price: 846 };
    expect(run("log(income)", vars)).toBeCloseTo(Math.log(129), 12);
    expect(run("ratio(amount, price)", vars)).toBeCloseTo(800 / 846, 12);
    expect(run("clamp(income - 200, 0, 50)", vars)).toBe(0);
    expect(run("max(debt, 3, 99) + min(1, 2)", vars)).toBe(100);
    expect(run("sqrt(16) + abs(-2) + floor(2.7) + ceil(2.1) + round(2.5) + exp(0) + log1p(0)")).toBe(4 + 2 + 2 + 3 + 3 + 1 + 0);
    expect(run("coalesce(missing, debt, 7)", vars)).toBe(20);
  });

  it("gives null, never zero or Infinity, for missing inputs and undefined operations", () => {
    expect(run("x + 1")).toBeNull();
    expect(run("1 / 0")).toBeNull();
    expect(run("ratio(1, 0)")).toBeNull();
    expect(run("log(0)")).toBeNull();
    expect(run("sqrt(-1)")).toBeNull();
    expect(run("x > 1")).toBeNull();
    expect(run("false && x")).toBe(false);
    expect(run("true || x")).toBe(true);
    expect(run("coalesce(x, 1 / 0)")).toBeNull();
    expect(run("exp(1000)")).toBeNull();
  });

  it("lists the features an expression reads", () => {
    expect([...references(parse("ratio(debt, income) + coalesce(age, 30) > limit ? x : y"))].sort()).toEqual(["age", "debt", "income", "limit", "x", "y"]);
  });

  it("rejects malformed expressions with the position of the problem", () => {
    const bad: [string, RegExp][] = [
      ["1 +", /unexpected end/],
      ["foo(1)", /unknown function 'foo'/],
      ["clamp(1, 2)", /clamp\(\) takes 3 argument/],
      ["a b", /unexpected 'b' after the expression/],
      ["(1 + 2", /expected '\)'/],
      ["a = 1", /unexpected character '='/],
      ["'open", /unterminated string/],
      ["a ? b", /expected ':'/],
      ["x".repeat(2001), /longer than 2000/],
      ["(".repeat(100) + "1" + ")".repeat(100), /nesting deeper/],
    ];
    for (const [src, message] of bad) {
      expect(() => parse(src), src.slice(0, 20)).toThrow(ExpressionError);
      expect(() => parse(src)).toThrow(message);
    }
    expect(() => parse("1 +")).toThrow(/at position 3/);
  });

  it("never reaches eval: a constructor-chain string is just an unknown name", () => {
    expect(run("constructor")).toBeNull();
    expect(() => parse("constructor.constructor('return 1')()")).toThrow(ExpressionError);
  });
});

describe("dependency graph", () => {
  it("finds a cycle and returns its path", () => {
    const graph = new Map([
      ["a", ["b"]],
      ["b", ["c"]],
      ["c", ["a"]],
      ["d", []],
    ]);
    expect(checkAcyclic(graph)).toEqual(["a", "b", "c", "a"]);
    expect(checkAcyclic(new Map([["a", ["a"]]]))).toEqual(["a", "a"]);
    expect(checkAcyclic(new Map([["a", ["b"]], ["b", []]]))).toBeUndefined();
  });

  it("orders a request's closure dependencies first, each once", () => {
    const deps: Record<string, string[]> = { score: ["dti", "income"], dti: ["debt", "income"], debt: [], income: [] };
    const order = plan(["score"], (n) => deps[n] ?? []);
    expect(order).toEqual(["debt", "income", "dti", "score"]);
  });
});
