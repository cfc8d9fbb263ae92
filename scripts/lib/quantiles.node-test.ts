/** The benchmarks' median and bootstrap interval (node --test, from `npm test`). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { bootstrapMedian, median } from "./quantiles.ts";

test("bootstrapMedian: the point is the sample median, inside its interval; seeded, so repeatable", () => {
  const xs = [12, 7, 3, 25, 9, 14, 8, 30, 11, 10];
  const b = bootstrapMedian(xs);
  assert.equal(b.point, median(xs));
  assert.equal(b.point, 10.5);
  assert.ok(b.lo <= b.point && b.point <= b.hi, JSON.stringify(b));
  // Bootstrap medians of a 10-value sample are medians of resampled values: within the sample's range.
  assert.ok(b.lo >= 3 && b.hi <= 30);
  assert.deepEqual(bootstrapMedian(xs), b);
  assert.deepEqual(bootstrapMedian([5, 5, 5]), { point: 5, lo: 5, hi: 5 });
});

test("bootstrapMedian: a wider spread gives a wider interval", () => {
  const narrow = bootstrapMedian([9, 10, 10, 11, 10, 9, 11, 10]);
  const wide = bootstrapMedian([1, 10, 30, 5, 20, 2, 40, 8]);
  assert.ok(wide.hi - wide.lo > narrow.hi - narrow.lo);
});
