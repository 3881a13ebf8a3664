import { test } from "node:test";
import assert from "node:assert/strict";
import { niceTicks, renderSvg } from "../src/experiments/plot.js";

test("plot: non-finite values and values ≤ 0 on a log axis break the line instead of breaking the SVG", () => {
  const svg = renderSvg({
    title: "t <&> \"q\"",
    xLabel: "epoch",
    panels: [
      { title: "linear", series: [{ name: "a", values: [1, 2, NaN, 4, 5, Infinity, 7] }] },
      { title: "log", yScale: "log", series: [{ name: "b", values: [1e-3, 0, 1e2, 1e5, -4, 1e9] }], markers: [{ x: 3, label: "here" }] },
    ],
  });
  assert.match(svg, /^<svg /);
  assert.ok(svg.trimEnd().endsWith("</svg>"));
  assert.doesNotMatch(svg, /="[^"]*(NaN|Infinity)/);
  assert.match(svg, /t &lt;&amp;&gt; &quot;q&quot;/);
  // linear: runs [1,2] [4,5] [7] → 2 polylines + 1 dot; log: runs [1e-3] [1e2,1e5] [1e9] → 1 polyline + 2 dots
  assert.equal((svg.match(/<polyline /g) ?? []).length, 3);
  assert.equal((svg.match(/<circle /g) ?? []).length, 3);
  assert.match(svg, />here</);
  assert.match(svg, />1e9</); // decade ticks reach the top value
});

test("plot: an empty or constant series still renders", () => {
  const svg = renderSvg({ title: "x", xLabel: "epoch", panels: [{ title: "c", series: [{ name: "c", values: [2, 2, 2] }] }, { title: "e", yScale: "log", series: [{ name: "e", values: [] }] }] });
  assert.doesNotMatch(svg, /="[^"]*(NaN|Infinity)/);
  assert.equal((svg.match(/<polyline /g) ?? []).length, 1);
});

test("niceTicks: round steps covering the range", () => {
  assert.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(1, 150), [0, 50, 100, 150]);
  const t = niceTicks(0.013, 0.87);
  assert.ok(t[0]! <= 0.013 && t[t.length - 1]! >= 0.87);
});
