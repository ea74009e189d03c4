// Pruning on the page: a line-by-line port of interp.circuits.graph.prune (and of influence,
// normalize_rows and _cumulative_cut there). Python works on the dense float32 matrix; here the
// edges are a sparse list (target T[e], source S[e], weight W[e], each weight the exact float32
// value) and the arithmetic is float64, except where float32 rounding decides what is kept:
// the cumulative shares and the comparisons with the cuts are rounded as torch rounds them.
// Zero entries of the dense matrix change no cumulative sum, so the cuts, and therefore the
// nodes and edges kept, are the same (tests/acceptance/test_viewer_browser.py checks it
// against prune for a grid of thresholds, 1.0 included).

var prune = (function () {
  "use strict";

  // |W| / row sums of |W| (rows = targets), over the edges switched on
  function normalizeRows(n, T, W, on) {
    var rowSum = new Float64Array(n), a = new Float64Array(T.length), e;
    for (e = 0; e < T.length; e++) if (on[e]) rowSum[T[e]] += Math.abs(W[e]);
    for (e = 0; e < T.length; e++) a[e] = on[e] ? Math.abs(W[e]) / Math.max(rowSum[T[e]], 1e-12) : 0;
    return a;
  }

  // w (A + A^2 + ...): total influence of each node on the probability-weighted logits
  function influence(n, T, S, a, logitWeights) {
    var current = new Float64Array(n), e, i, it;
    for (e = 0; e < T.length; e++) current[S[e]] += logitWeights[T[e]] * a[e];
    var total = Float64Array.from(current);
    for (it = 0; it < 10000; it++) {
      var any = false;
      for (i = 0; i < n; i++) if (Math.abs(current[i]) > 1e-12) { any = true; break; }
      if (!any) return total;
      var next = new Float64Array(n);
      for (e = 0; e < T.length; e++) if (a[e] !== 0) next[S[e]] += current[T[e]] * a[e];
      current = next;
      for (i = 0; i < n; i++) total[i] += current[i];
    }
    throw new Error("influence did not converge: the graph has a cycle (edges must go forward in the model)");
  }

  // smallest score kept so that the kept scores sum to `threshold` of the total. The scores are
  // float32 values; like torch, the total is a float32 sum, the running sum is accumulated in
  // double and stored as float32, and each share is a float32 division. A threshold of 1 keeps
  // every positive score (where float32 shares reach 1 depends on the order of summation)
  function cumulativeCut(scores, threshold) {
    var values = Float64Array.from(scores, Math.fround).sort().reverse(), sum = 0, i;
    if (threshold >= 1) {
      for (i = values.length - 1; i >= 0; i--) if (values[i] > 0) return values[i];
      return Infinity;
    }
    for (i = 0; i < values.length; i++) sum += values[i];
    var total = Math.fround(sum);
    if (!(total > 0)) return Infinity;
    var t = Math.fround(threshold), partial = 0, idx = values.length - 1;  // torch.tensor(threshold) is float32
    for (i = 0; i < values.length; i++) {
      partial += values[i];
      if (Math.fround(Math.fround(partial) / total) >= t) { idx = i; break; }  // searchsorted: first share >= threshold
    }
    return values[Math.min(idx, values.length - 1)];
  }

  // g: {n, kinds[], T, S, W, logitWeights}. Returns {keep (per node), edgeKeep (per edge), influence}
  function run(g, nodeThreshold, edgeThreshold) {
    var n = g.n, T = g.T, S = g.S, W = g.W, E = T.length, e, i;
    var always = g.kinds.map(function (k) { return k === "embedding" || k === "logit"; });
    var feature = g.kinds.map(function (k) { return k === "feature"; });
    var all = new Uint8Array(E).fill(1);
    var nodeInfl = influence(n, T, S, normalizeRows(n, T, W, all), g.logitWeights);
    var cut = cumulativeCut(nodeInfl, nodeThreshold), f32 = Math.fround;
    var keep = new Uint8Array(n);
    for (i = 0; i < n; i++) keep[i] = (f32(nodeInfl[i]) >= cut && nodeInfl[i] > 0) || always[i] ? 1 : 0;
    var on = new Uint8Array(E);
    for (e = 0; e < E; e++) on[e] = keep[T[e]] && keep[S[e]] ? 1 : 0;
    var norm = normalizeRows(n, T, W, on);
    var prunedInfl = influence(n, T, S, norm, g.logitWeights);
    var scores = new Float64Array(E), kept = [];
    for (e = 0; e < E; e++) {
      if (!on[e]) continue;
      scores[e] = f32(norm[e] * (prunedInfl[T[e]] + g.logitWeights[T[e]]));
      kept.push(scores[e]);
    }
    var edgeCut = cumulativeCut(kept, edgeThreshold);
    var edgeKeep = new Uint8Array(E);
    for (e = 0; e < E; e++) edgeKeep[e] = on[e] && scores[e] >= edgeCut && scores[e] > 0 ? 1 : 0;
    for (;;) {
      var hasIn = new Uint8Array(n), hasOut = new Uint8Array(n), changed = false;
      for (e = 0; e < E; e++) {
        edgeKeep[e] = edgeKeep[e] && keep[T[e]] && keep[S[e]] ? 1 : 0;
        if (edgeKeep[e]) { hasOut[S[e]] = 1; hasIn[T[e]] = 1; }
      }
      for (i = 0; i < n; i++) {
        var k = keep[i] && (hasOut[i] || always[i]) && (hasIn[i] || !feature[i]) ? 1 : 0;
        if (k !== keep[i]) { keep[i] = k; changed = true; }
      }
      if (!changed) break;
    }
    return { keep: keep, edgeKeep: edgeKeep, influence: nodeInfl };
  }

  return { run: run, influence: influence, normalizeRows: normalizeRows, cumulativeCut: cumulativeCut };
})();
