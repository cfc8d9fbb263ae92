/**
 * Dependencies between features form a DAG: online features read other features by name. A cycle
 * is refused when a definition would create it (checkAcyclic); per request, the closure of the
 * requested names is put in evaluation order (plan), so every online feature is computed after
 * the features it reads, each once.
 */

/** Returns a cycle as a path of names (first == last), or undefined when the graph is acyclic. */
export function checkAcyclic(graph: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 1 | 2>(); // 1 = on the stack, 2 = done
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    const s = state.get(node);
    if (s === 2) return undefined;
    if (s === 1) return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, 1);
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(node, 2);
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

/** The requested names and everything they read, dependencies before dependants. */
export function plan(requested: Iterable<string>, depsOf: (name: string) => string[]): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (name: string, depth: number) => {
    if (seen.has(name)) return;
    if (depth > 256) throw new Error(`dependency chain deeper than 256 at '${name}'`);
    seen.add(name);
    for (const dep of depsOf(name)) visit(dep, depth + 1);
    order.push(name);
  };
  for (const name of requested) visit(name, 0);
  return order;
}
