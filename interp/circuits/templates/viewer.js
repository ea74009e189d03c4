// The attribution-graph viewer: token positions across, layers up (embeddings at the bottom,
// logits at the top). Drawn with d3 (bundled: interp/circuits/assets/d3.min.js); pruning with
// prune.js. Loaded once per page (once per kernel in Jupyter); each graph is mounted with
// interpViewer.mount(element, base64-gzip-json).

var interpViewer = (function () {
  "use strict";

  var STEP = 22, LINE = 36, ROW_PAD = 8, HEAD_LINE = 30, COL_PAD = 8, MAX_PER_LINE = 10;
  var MARGIN = { left: 58, right: 16, top: 14, bottom: 40 };
  var LABEL_CHARS = { feature: 9, logit: 22, head: 8, token: 12 };
  var COLOURS = { positive: "#2b6cb0", negative: "#c53030" };

  function inflate(b64) {
    var bytes = Uint8Array.from(atob(b64), function (c) { return c.charCodeAt(0); });
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(JSON.parse);
  }

  function truncate(text, n) {
    text = String(text);
    return text.length <= n ? text : text.slice(0, n - 1) + "\u2026";
  }

  function fmt(x, digits) {
    return x === null || x === undefined ? "\u2013" : Number(x).toFixed(digits === undefined ? 3 : digits);
  }

  function overlaps(a, b) {
    return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
  }

  // ---- the graph as the page holds it ---------------------------------------------------

  function model(data) {
    var nodes = data.nodes.map(function (d, i) {
      return Object.assign({ i: i, row: d.kind === "embedding" ? 0 : d.kind === "logit" ? data.n_layers + 1 : d.layer + 1 }, d);
    });
    var T = Int32Array.from(data.edges, function (e) { return e[0]; });
    var S = Int32Array.from(data.edges, function (e) { return e[1]; });
    var W = Float64Array.from(data.edges, function (e) { return Math.fround(e[2]); });
    var byId = {};
    nodes.forEach(function (n) { byId[n.id] = n; });
    return {
      data: data, nodes: nodes, byId: byId, n: nodes.length, T: T, S: S, W: W,
      kinds: nodes.map(function (n) { return n.kind; }),
      logitWeights: Float64Array.from(nodes, function (n) { return Math.fround(n.logit_weight || 0); }),
      maxAbs: W.reduce(function (m, w) { return Math.max(m, Math.abs(w)); }, 1e-12),
      heads: data.heads.map(function (h) {
        return { source: h[0], target: h[1], layer: h[2], head: h[3], query: h[4], weight: h[5] };
      }),
    };
  }

  function nodeLabel(n) {
    if (n.kind === "feature") return n.top_tokens && n.top_tokens.length ? n.top_tokens[0][0].trim() || JSON.stringify(n.top_tokens[0][0]) : "#" + n.index;
    if (n.kind === "logit") return n.label + (n.prob !== null && n.prob !== undefined ? " p=" + fmt(n.prob, 2) : "");
    if (n.kind === "error") return "error";
    return n.label;
  }

  function fullName(n) {
    if (n.kind === "feature") {
      var tops = (n.top_tokens || []).slice(0, 4).map(function (t) { return JSON.stringify(t[0]); }).join(", ");
      return n.label + " (" + n.id + ")" + (tops ? " \u2192 " + tops : "");
    }
    return n.label + " (" + n.kind + ", " + n.id + ")";
  }

  // ---- one viewer ----------------------------------------------------------------------

  function Viewer(root, data) {
    this.root = d3.select(root).classed("iv-viewer", true).html("");
    this.g = model(data);
    this.state = {
      nodeThreshold: 1, edgeThreshold: 1, errors: true, heads: false, labels: true, pinnedOnly: false,
      clicked: null, pinned: [], supernodes: [],
    };
    this.build();
    this.update();
  }

  Viewer.prototype.build = function () {
    var self = this, s = this.state;
    var bar = this.root.append("div").attr("class", "iv-controls");
    function slider(name, key, label) {
      var box = bar.append("label").attr("class", "iv-slider");
      box.append("span").text(label);
      box.append("input").attr("type", "range").attr("name", name).attr("min", 0.05).attr("max", 1).attr("step", 0.01)
        .property("value", s[key])
        .on("input", function () { s[key] = +this.value; self.update(); });
      box.append("output").attr("class", "iv-" + name);
    }
    slider("node-threshold", "nodeThreshold", "node threshold");
    slider("edge-threshold", "edgeThreshold", "edge threshold");
    function toggle(name, key, label) {
      var box = bar.append("label").attr("class", "iv-toggle");
      box.append("input").attr("type", "checkbox").attr("name", name).property("checked", s[key])
        .on("change", function () { s[key] = this.checked; self.update(); });
      box.append("span").text(label);
    }
    toggle("errors", "errors", "error nodes");
    toggle("heads", "heads", "head paths");
    toggle("labels", "labels", "labels");
    toggle("pinned-only", "pinnedOnly", "pinned only");
    bar.append("span").attr("class", "iv-counts");
    var legend = bar.append("span").attr("class", "iv-legend");
    legend.html(
      '<i class="iv-key iv-key-feature"></i>feature <i class="iv-key iv-key-error"></i>error ' +
      '<i class="iv-key iv-key-embedding"></i>token <i class="iv-key iv-key-logit"></i>logit ' +
      '<i class="iv-key iv-key-head"></i>head <b style="color:' + COLOURS.positive + '">\u2501</b> excites ' +
      '<b style="color:' + COLOURS.negative + '">\u2501</b> inhibits \u00b7 a feature is labelled with its top output token');

    var main = this.root.append("div").attr("class", "iv-main");
    this.scroll = main.append("div").attr("class", "iv-scroll");
    this.svg = this.scroll.append("svg").attr("class", "iv-graph").attr("role", "img")
      .attr("aria-label", "attribution graph of " + JSON.stringify(this.g.data.prompt));
    this.svg.on("click", function (ev) { if (ev.target === self.svg.node()) self.click(null); });
    this.layers = {};
    ["axes", "edges", "headlinks", "nodes", "labels"].forEach(function (k) {
      self.layers[k] = self.svg.append("g").attr("class", "iv-" + k);
    });
    var side = main.append("div").attr("class", "iv-side");
    this.card = side.append("div").attr("class", "iv-card");
    this.sub = side.append("div").attr("class", "iv-subgraph");
    this.measurer = this.svg.append("text").attr("class", "iv-label").attr("visibility", "hidden");
    this.root.on("keydown", function (ev) { if (ev.key === "Escape") self.click(null); }).attr("tabindex", 0);
  };

  // ---- what is visible ------------------------------------------------------------------

  Viewer.prototype.visible = function () {
    var g = this.g, s = this.state, pinned = new Set(s.pinned);
    var p = prune.run(g, s.nodeThreshold, s.edgeThreshold);
    var nodes = g.nodes.filter(function (n) {
      return p.keep[n.i] && (s.errors || n.kind !== "error") && (!s.pinnedOnly || pinned.has(n.id));
    });
    var shown = new Uint8Array(g.n);
    nodes.forEach(function (n) { shown[n.i] = 1; });
    var edges = [];
    for (var e = 0; e < g.T.length; e++) {
      if (p.edgeKeep[e] && shown[g.T[e]] && shown[g.S[e]]) edges.push({ e: e, t: g.nodes[g.T[e]], s: g.nodes[g.S[e]], w: g.W[e] });
    }
    var heads = [];
    if (s.heads) {
      var edgeSet = new Set(edges.map(function (d) { return d.t.i * g.n + d.s.i; })), byKey = {};
      g.heads.forEach(function (h) {
        if (!edgeSet.has(h.target * g.n + h.source)) return;
        var key = "H" + h.layer + "." + h.head + "_" + h.query;
        var head = byKey[key] || (byKey[key] = { id: key, kind: "head", layer: h.layer, head: h.head, pos: h.query, weight: 0, paths: [] });
        head.weight += Math.abs(h.weight);
        head.paths.push(h);
      });
      heads = Object.keys(byKey).map(function (k) { return byKey[k]; });
    }
    return { nodes: nodes, edges: edges, heads: heads, prune: p };
  };

  // ---- layout: columns sized to their fullest cell, rows to their fullest column ---------

  Viewer.prototype.textBox = function (text) {
    this.measurer.text(text);
    var b = this.measurer.node().getBBox();
    return { x: b.x, y: b.y, w: b.width, h: b.height };
  };

  Viewer.prototype.layout = function (vis) {
    var self = this, g = this.g, nPos = g.data.tokens.length, nRows = g.data.n_layers + 2;
    var cells = {}, headCells = {};
    function cell(map, r, p) { var k = r + ":" + p; return map[k] || (map[k] = []); }
    vis.nodes.slice().sort(function (a, b) {
      return (a.kind === "error") - (b.kind === "error") || (b.influence || 0) - (a.influence || 0) || a.i - b.i;
    }).forEach(function (n) { cell(cells, n.row, n.pos).push(n); });
    vis.heads.sort(function (a, b) { return a.head - b.head; }).forEach(function (h) { cell(headCells, h.layer, h.pos).push(h); });
    var perLine = [], colW = [], colX = [], x = MARGIN.left;
    this.tokenBoxes = [];
    for (var p = 0; p < nPos; p++) {
      var most = 1;
      for (var r = 0; r < nRows; r++) most = Math.max(most, (cells[r + ":" + p] || []).length);
      for (var l = 0; l < g.data.n_layers; l++) most = Math.max(most, (headCells[l + ":" + p] || []).length);
      perLine[p] = Math.min(most, MAX_PER_LINE);
      var tok = this.textBox(truncate(g.data.tokens[p].trim() || JSON.stringify(g.data.tokens[p]), LABEL_CHARS.token));
      this.tokenBoxes.push(tok);
      colW[p] = Math.max(perLine[p] * STEP, tok.w + 6, 34) + 2 * COL_PAD;
      colX[p] = x;
      x += colW[p];
    }
    function lines(map, r) {
      var most = 0;
      for (var p = 0; p < nPos; p++) most = Math.max(most, Math.ceil((map[r + ":" + p] || []).length / perLine[p]));
      return most;
    }
    // rows from the top: logits, layer n-1 (and the attention band of layer n-1 under it), ..., embeddings
    var rowTop = [], rowH = [], bandTop = [], bandH = [], y = MARGIN.top;
    for (var row = nRows - 1; row >= 0; row--) {
      rowTop[row] = y;
      rowH[row] = Math.max(1, lines(cells, row)) * LINE + ROW_PAD;
      y += rowH[row];
      var layer = row - 1;  // the attention of block `layer` sits under its MLP row
      if (layer >= 0 && layer < g.data.n_layers) {
        bandTop[layer] = y;
        bandH[layer] = vis.heads.length ? lines(headCells, layer) * HEAD_LINE + (lines(headCells, layer) ? 8 : 0) : 0;
        y += bandH[layer];
      }
    }
    var place = function (map, top, height, line) {
      Object.keys(map).forEach(function (k) {
        var items = map[k], p = +k.split(":")[1], per = perLine[p];
        items.forEach(function (it, j) {
          var ln = Math.floor(j / per), inLine = Math.min(per, items.length - ln * per), k2 = j - ln * per;
          it.x = colX[p] + colW[p] / 2 + (k2 - (inLine - 1) / 2) * STEP;
          it.y = top(+k.split(":")[0]) + (height(+k.split(":")[0]) - Math.ceil(items.length / per) * line) / 2 + (ln + 0.5) * line;
        });
      });
    };
    place(cells, function (r) { return rowTop[r]; }, function (r) { return rowH[r]; }, LINE);
    place(headCells, function (l) { return bandTop[l]; }, function (l) { return bandH[l]; }, HEAD_LINE);
    this.geom = { colX: colX, colW: colW, rowTop: rowTop, rowH: rowH, bandTop: bandTop, bandH: bandH,
                  width: x + MARGIN.right, height: y + MARGIN.bottom, axisY: y };
  };

  // ---- drawing --------------------------------------------------------------------------

  Viewer.prototype.update = function () {
    var vis = this.vis = this.visible();
    this.layout(vis);
    var G = this.geom, g = this.g, self = this;
    this.svg.attr("width", G.width).attr("height", G.height).attr("viewBox", [0, 0, G.width, G.height].join(" "));
    this.drawAxes();
    var wScale = d3.scaleSqrt().domain([0, g.maxAbs]).range([0.3, 5]);
    var aScale = d3.scaleSqrt().domain([0, g.maxAbs]).range([0.04, 0.8]);
    vis.edges.sort(function (a, b) { return Math.abs(a.w) - Math.abs(b.w); });
    var link = function (d) {
      var my = (d.s.y + d.t.y) / 2;
      return "M" + d.s.x + "," + d.s.y + "C" + d.s.x + "," + my + " " + d.t.x + "," + my + " " + d.t.x + "," + d.t.y;
    };
    this.edgeSel = this.layers.edges.selectAll("path").data(vis.edges, function (d) { return d.e; })
      .join("path").order().attr("class", "iv-edge").attr("d", link)
      .attr("stroke", function (d) { return d.w > 0 ? COLOURS.positive : COLOURS.negative; })
      .attr("stroke-width", function (d) { return wScale(Math.abs(d.w)); })
      .style("--iv-a", function (d) { return aScale(Math.abs(d.w)); })
      .attr("data-source", function (d) { return d.s.id; }).attr("data-target", function (d) { return d.t.id; });
    this.edgeSel.selectAll("title").data(function (d) { return [d]; }).join("title")
      .text(function (d) { return d.s.label + " \u2192 " + d.t.label + ": " + fmt(d.w); });
    var headLinks = [];
    vis.heads.forEach(function (h) {
      var seen = {};
      h.paths.forEach(function (p) {
        [[g.nodes[p.source], h], [h, g.nodes[p.target]]].forEach(function (pair) {
          var key = pair[0].id + ">" + pair[1].id;
          if (!seen[key]) headLinks.push(seen[key] = { s: pair[0], t: pair[1], key: key, w: 0 });
          seen[key].w += p.weight;
        });
      });
    });
    this.headLinkSel = this.layers.headlinks.selectAll("path").data(headLinks, function (d) { return d.key; })
      .join("path").attr("class", "iv-headlink").attr("d", link)
      .attr("stroke-width", function (d) { return wScale(Math.min(Math.abs(d.w), g.maxAbs)); });
    var all = vis.nodes.concat(vis.heads);
    this.nodeSel = this.layers.nodes.selectAll("g.iv-node").data(all, function (d) { return d.id; })
      .join(function (enter) {
        var n = enter.append("g").attr("class", function (d) { return "iv-node iv-" + d.kind; });
        n.append("path");
        n.append("title");
        return n;
      })
      .attr("data-id", function (d) { return d.id; })
      .attr("transform", function (d) { return "translate(" + d.x + "," + d.y + ")"; })
      .on("click", function (ev, d) { ev.stopPropagation(); if (ev.shiftKey) self.pin(d.id); else self.click(d.id); });
    this.nodeSel.select("path").attr("d", function (d) { return d3.symbol().type(self.symbol(d)).size(self.symbolSize(d))(); });
    this.nodeSel.select("title").text(function (d) { return d.kind === "head" ? "attention head L" + d.layer + "H" + d.head + " at position " + d.pos : fullName(d); });
    this.placeLabels(vis);
    this.style();
    this.root.select(".iv-node-threshold").text(fmt(this.state.nodeThreshold, 2));
    this.root.select(".iv-edge-threshold").text(fmt(this.state.edgeThreshold, 2));
    this.root.select(".iv-counts").text(vis.nodes.length + " nodes \u00b7 " + vis.edges.length + " edges" +
      (vis.heads.length ? " \u00b7 " + vis.heads.length + " heads" : ""));
    this.renderCard();
    this.renderSubgraph();
  };

  Viewer.prototype.symbol = function (d) {
    return { feature: d3.symbolCircle, error: d3.symbolSquare, embedding: d3.symbolSquare, logit: d3.symbolStar,
             head: d3.symbolDiamond }[d.kind];
  };

  Viewer.prototype.symbolSize = function (d) {
    return { feature: 120, error: 90, embedding: 110, logit: 190, head: 80 }[d.kind];
  };

  // half the width (or height, the larger) of a node's symbol, measured once per kind
  Viewer.prototype.halfSize = function (d) {
    var cache = this.halves || (this.halves = {});
    if (!(d.kind in cache)) {
      var path = this.svg.append("path").attr("d", d3.symbol().type(this.symbol(d)).size(this.symbolSize(d))());
      var b = path.node().getBBox();
      cache[d.kind] = Math.max(-b.x, b.x + b.width, -b.y, b.y + b.height);
      path.remove();
    }
    return cache[d.kind];
  };

  Viewer.prototype.drawAxes = function () {
    var G = this.geom, g = this.g, data = g.data, self = this;
    var ax = this.layers.axes.html("");
    var rows = d3.range(data.n_layers + 2);
    ax.selectAll("rect.iv-band").data(rows).join("rect").attr("class", function (r) { return "iv-band" + (r % 2 ? " iv-odd" : ""); })
      .attr("x", MARGIN.left).attr("width", G.width - MARGIN.left - MARGIN.right)
      .attr("y", function (r) { return G.rowTop[r]; }).attr("height", function (r) { return G.rowH[r]; });
    ax.selectAll("text.iv-axis").data(rows).join("text").attr("class", "iv-axis iv-label")
      .attr("x", MARGIN.left - 8).attr("y", function (r) { return G.rowTop[r] + G.rowH[r] / 2; })
      .text(function (r) { return r === 0 ? "emb" : r === data.n_layers + 1 ? "logit" : "L" + (r - 1); });
    ax.selectAll("line.iv-col").data(d3.range(1, data.tokens.length)).join("line").attr("class", "iv-col")
      .attr("x1", function (p) { return G.colX[p]; }).attr("x2", function (p) { return G.colX[p]; })
      .attr("y1", MARGIN.top).attr("y2", G.axisY);
    this.fixed = [];
    ax.selectAll("text.iv-token").data(data.tokens).join("text").attr("class", "iv-token iv-label")
      .attr("x", function (t, p) { return G.colX[p] + G.colW[p] / 2; }).attr("y", G.axisY + 14)
      .text(function (t) { return truncate(t.trim() || JSON.stringify(t), LABEL_CHARS.token); })
      .each(function (t, p) {
        d3.select(this).append("title").text("position " + p + ": " + JSON.stringify(t));
        var b = self.tokenBoxes[p];
        self.fixed.push({ x0: G.colX[p] + G.colW[p] / 2 - b.w / 2, x1: G.colX[p] + G.colW[p] / 2 + b.w / 2, y0: G.axisY + 14 + b.y, y1: G.axisY + 14 + b.y + b.h });
      });
    ax.selectAll("text.iv-pos").data(data.tokens).join("text").attr("class", "iv-pos iv-label")
      .attr("x", function (t, p) { return G.colX[p] + G.colW[p] / 2; }).attr("y", G.axisY + 28)
      .text(function (t, p) { return p; });
  };

  // labels: most influential first, each at the first free spot around its node (right, left,
  // above, below); a label with no free spot is hidden and its node keeps the full text on hover
  Viewer.prototype.placeLabels = function (vis) {
    var self = this, G = this.geom, taken = this.fixed.slice();
    vis.nodes.concat(vis.heads).forEach(function (n) {
      var h = self.halfSize(n) + 1;
      taken.push({ x0: n.x - h, x1: n.x + h, y0: n.y - h, y1: n.y + h });
    });
    var wanted = vis.nodes.filter(function (n) { return n.kind === "feature" || n.kind === "logit"; })
      .sort(function (a, b) { return (b.kind === "logit") - (a.kind === "logit") || (b.influence || 0) - (a.influence || 0); })
      .concat(vis.heads.slice().sort(function (a, b) { return b.weight - a.weight; }));
    var placed = [];
    if (this.state.labels) {
      wanted.forEach(function (n) {
        var full = n.kind === "head" ? "L" + n.layer + "H" + n.head : nodeLabel(n);
        var text = truncate(full, LABEL_CHARS[n.kind]);
        var b = self.textBox(text), gap = self.halfSize(n) + 3;
        var spots = [[n.x, n.y - gap - (b.y + b.h), "middle"], [n.x, n.y + gap - b.y, "middle"],
                     [n.x + gap, n.y, "start"], [n.x - gap, n.y, "end"]];
        for (var k = 0; k < spots.length; k++) {
          var sx = spots[k][0], sy = spots[k][1], anchor = spots[k][2];
          var x0 = anchor === "start" ? sx : anchor === "end" ? sx - b.w : sx - b.w / 2;
          var rect = { x0: x0 - 1, x1: x0 + b.w + 1, y0: sy + b.y - 1, y1: sy + b.y + b.h + 1 };
          if (rect.x0 < 0 || rect.x1 > G.width || rect.y0 < 0 || rect.y1 > G.axisY) continue;
          if (taken.some(function (t) { return overlaps(t, rect); })) continue;
          taken.push(rect);
          placed.push({ id: n.id, node: n, text: text, full: full, x: sx, y: sy, anchor: anchor });
          return;
        }
      });
    }
    this.labelSel = this.layers.labels.selectAll("text").data(placed, function (d) { return d.id; })
      .join("text").attr("class", function (d) { return "iv-label iv-node-label iv-label-" + d.node.kind; })
      .attr("x", function (d) { return d.x; }).attr("y", function (d) { return d.y; })
      .attr("text-anchor", function (d) { return d.anchor; }).attr("data-id", function (d) { return d.id; })
      .text(function (d) { return d.text; })
      .on("click", function (ev, d) { ev.stopPropagation(); self.click(d.id); });
    this.labelSel.selectAll("title").data(function (d) { return [d]; }).join("title").text(function (d) { return d.full; });
    this.labelCount = { placed: placed.length, wanted: wanted.length };
  };

  Viewer.prototype.style = function () {
    var c = this.state.clicked, pinned = new Set(this.state.pinned), near = new Set();
    if (c) {
      this.vis.edges.forEach(function (d) { if (d.s.id === c) near.add(d.t.id); if (d.t.id === c) near.add(d.s.id); });
      var head = this.vis.heads.find(function (h) { return h.id === c; }), g = this.g;
      if (head) head.paths.forEach(function (p) { near.add(g.nodes[p.source].id); near.add(g.nodes[p.target].id); });
    }
    this.edgeSel.classed("iv-hl", function (d) { return !!c && (d.s.id === c || d.t.id === c); })
      .classed("iv-dim", function (d) { return !!c && d.s.id !== c && d.t.id !== c; });
    this.headLinkSel.classed("iv-hl", function (d) { return !!c && (d.s.id === c || d.t.id === c); })
      .classed("iv-dim", function (d) { return !!c && d.s.id !== c && d.t.id !== c; });
    this.nodeSel.classed("iv-clicked", function (d) { return d.id === c; })
      .classed("iv-near", function (d) { return near.has(d.id); })
      .classed("iv-dim", function (d) { return !!c && d.id !== c && !near.has(d.id); })
      .classed("iv-pinned", function (d) { return pinned.has(d.id); });
    this.labelSel.classed("iv-dim", function (d) { return !!c && d.id !== c && !near.has(d.id); });
  };

  // ---- interaction ----------------------------------------------------------------------

  Viewer.prototype.click = function (id) {
    this.state.clicked = id === this.state.clicked ? null : id;
    this.style();
    this.renderCard();
    this.renderSubgraph();  // the export records the clicked node
  };

  Viewer.prototype.pin = function (id) {
    var s = this.state, i = s.pinned.indexOf(id);
    if (i >= 0) {
      s.pinned.splice(i, 1);
      s.supernodes = s.supernodes.map(function (sn) { return sn.filter(function (x, j) { return j === 0 || x !== id; }); })
        .filter(function (sn) { return sn.length > 2; });
    } else if (this.g.byId[id]) {
      s.pinned.push(id);
    }
    if (s.pinnedOnly) this.update(); else { this.style(); this.renderCard(); this.renderSubgraph(); }
  };

  Viewer.prototype.group = function (ids, name) {
    var s = this.state;
    ids = ids.filter(function (id) { return s.pinned.indexOf(id) >= 0; });
    if (ids.length < 2) return false;
    s.supernodes = s.supernodes.map(function (sn) { return [sn[0]].concat(sn.slice(1).filter(function (x) { return ids.indexOf(x) < 0; })); })
      .filter(function (sn) { return sn.length > 2; });
    s.supernodes.push([name || "supernode"].concat(ids));
    this.renderSubgraph();
    return true;
  };

  Viewer.prototype.setThresholds = function (nodeThreshold, edgeThreshold) {
    var s = this.state;
    if (nodeThreshold !== undefined && nodeThreshold !== null) s.nodeThreshold = nodeThreshold;
    if (edgeThreshold !== undefined && edgeThreshold !== null) s.edgeThreshold = edgeThreshold;
    this.root.select("input[name=node-threshold]").property("value", s.nodeThreshold);
    this.root.select("input[name=edge-threshold]").property("value", s.edgeThreshold);
    this.update();
  };

  Viewer.prototype.visibleNodeIds = function () {
    return this.vis.nodes.map(function (n) { return n.id; });
  };

  Viewer.prototype.visibleEdges = function () {
    return this.vis.edges.map(function (d) { return [d.s.id, d.t.id]; });
  };

  // ---- the card of the clicked node -----------------------------------------------------

  Viewer.prototype.renderCard = function () {
    var self = this, g = this.g, c = this.state.clicked, card = this.card.html("");
    var n = c && (g.byId[c] || this.vis.heads.find(function (h) { return h.id === c; }));
    if (!n) {
      card.append("p").attr("class", "iv-muted").text("Click a node for its card; shift-click (or \u201cpin\u201d) to add it to the subgraph. " +
        "The sliders prune the graph again on the page, as interp.circuits.prune does.");
      return;
    }
    if (n.kind === "head") {
      card.append("h3").text("attention head L" + n.layer + "H" + n.head);
      card.append("p").text("moves information to position " + n.pos + " (" + JSON.stringify(g.data.tokens[n.pos]) + "); carries |weight| " + fmt(n.weight) + " over " + n.paths.length + " edges");
      return;
    }
    var head = card.append("h3");
    head.append("span").text(n.kind === "feature" ? n.label : nodeLabel(n) + " ");
    head.append("code").text(n.id);
    var pinned = this.state.pinned.indexOf(n.id) >= 0;
    card.append("button").attr("class", "iv-pin").text(pinned ? "unpin" : "pin").on("click", function () { self.pin(n.id); });
    var rows = [["kind", n.kind + (n.kind === "feature" || n.kind === "error" ? ", layer " + n.layer : "")],
                ["position", n.pos + " " + JSON.stringify(g.data.tokens[n.pos])]];
    if (n.activation !== null && n.activation !== undefined) {
      rows.push([{ feature: "activation", error: "error norm", logit: "logit value" }[n.kind] || "value", fmt(n.activation)]);
    }
    if (n.prob !== null && n.prob !== undefined) rows.push(["probability", fmt(n.prob)]);
    if (n.influence !== null && n.influence !== undefined) rows.push(["influence", fmt(n.influence)]);
    var crossLayer = n.writes_to && n.writes_to.length > 1;  // a cross-layer transcoder's feature
    if (n.writes_to) rows.push(["writes to", "MLP output" + (crossLayer ? "s of layers " : " of layer ") + n.writes_to.join(", ")]);
    var dl = card.append("table").attr("class", "iv-facts");
    rows.forEach(function (r) { var tr = dl.append("tr"); tr.append("td").text(r[0]); tr.append("td").text(r[1]); });
    if (n.top_tokens && n.top_tokens.length) {
      card.append("h4").text((crossLayer ? "decoders summed over its layers" : "decoder") + " through the unembedding: top tokens");
      var tt = card.append("div").attr("class", "iv-chips");
      n.top_tokens.forEach(function (t) { tt.append("code").attr("title", fmt(t[1])).text(t[0]); });
    }
    if (n.contexts && n.contexts.length) {
      card.append("h4").text("top activating contexts");
      var list = card.append("ol").attr("class", "iv-contexts");
      n.contexts.forEach(function (ctx) {
        var li = list.append("li");
        if (Array.isArray(ctx)) { li.append("span").text(ctx[0]); ctx = { value: ctx[1] }; }  // (text, value): graphs saved by an earlier interp
        else {
          var lead = /^\s*/.exec(ctx.token)[0];  // the token's own leading space stays outside the mark
          li.append("span").text(ctx.before + lead);
          li.append("mark").text(ctx.token.slice(lead.length));
          li.append("span").text(ctx.after);
        }
        li.append("span").attr("class", "iv-value").text(fmt(ctx.value, 2));
      });
    }
    var ins = this.vis.edges.filter(function (d) { return d.t.id === n.id; });
    var outs = this.vis.edges.filter(function (d) { return d.s.id === n.id; });
    [["strongest inputs", ins, "s"], ["strongest outputs", outs, "t"]].forEach(function (part) {
      if (!part[1].length) return;
      card.append("h4").text(part[0] + " (" + part[1].length + ")");
      var ul = card.append("ul").attr("class", "iv-links");
      part[1].slice().sort(function (a, b) { return Math.abs(b.w) - Math.abs(a.w); }).slice(0, 6).forEach(function (d) {
        var other = d[part[2]], li = ul.append("li");
        li.append("a").attr("href", "#").text(other.kind === "feature" ? other.label : nodeLabel(other))
          .on("click", function (ev) { ev.preventDefault(); self.click(other.id); });
        li.append("span").attr("class", d.w > 0 ? "iv-pos-w" : "iv-neg-w").text(" " + (d.w > 0 ? "+" : "") + fmt(d.w));
      });
    });
  };

  // ---- pinned subgraph, supernodes, export ----------------------------------------------

  Viewer.prototype.renderSubgraph = function () {
    var self = this, s = this.state, g = this.g, box = this.sub.html("");
    box.append("h3").text("Subgraph (" + s.pinned.length + " pinned)");
    if (!s.pinned.length) {
      box.append("p").attr("class", "iv-muted").text("No pinned nodes yet.");
    }
    var inSuper = {};
    s.supernodes.forEach(function (sn) { sn.slice(1).forEach(function (id) { inSuper[id] = sn[0]; }); });
    if (s.pinned.length) this.drawSubgraph(box.append("svg").attr("class", "iv-sub-graph"), inSuper);
    var ul = box.append("ul").attr("class", "iv-pinned-list");
    s.pinned.forEach(function (id) {
      var n = g.byId[id], li = ul.append("li");
      li.append("input").attr("type", "checkbox").attr("value", id).attr("class", "iv-select");
      li.append("a").attr("href", "#").text(n.kind === "feature" ? n.label : nodeLabel(n))
        .on("click", function (ev) { ev.preventDefault(); self.click(id); });
      li.append("code").text(" " + id);
      if (inSuper[id]) li.append("span").attr("class", "iv-super-tag").text(inSuper[id]);
      li.append("button").attr("class", "iv-unpin").attr("title", "unpin").text("\u00d7").on("click", function () { self.pin(id); });
    });
    if (s.pinned.length) {
      var form = box.append("div").attr("class", "iv-group");
      var name = form.append("input").attr("type", "text").attr("name", "supernode-name").attr("placeholder", "supernode name");
      form.append("button").attr("class", "iv-group-btn").text("group selected").on("click", function () {
        var ids = box.selectAll("input.iv-select").nodes().filter(function (x) { return x.checked; }).map(function (x) { return x.value; });
        self.group(ids, name.property("value").trim());
      });
    }
    if (s.supernodes.length) {
      box.append("h4").text("supernodes");
      var su = box.append("ul").attr("class", "iv-supernodes");
      s.supernodes.forEach(function (sn, k) {
        var li = su.append("li");
        li.append("b").text(sn[0]);
        li.append("span").text(" " + sn.slice(1).join(", ") + " ");
        li.append("button").text("ungroup").on("click", function () { s.supernodes.splice(k, 1); self.renderSubgraph(); });
      });
    }
    var actions = box.append("div").attr("class", "iv-export");
    actions.append("button").attr("class", "iv-export-btn").text("export subgraph JSON").property("disabled", !s.pinned.length)
      .on("click", function () { self.download(); });
    box.append("textarea").attr("class", "iv-export-text").attr("readonly", true).attr("rows", 3)
      .property("value", s.pinned.length ? JSON.stringify(this.subgraph()) : "");
  };

  // the pinned nodes as boxes, a supernode as one box named after it; rows by layer (logits on
  // top), boxes side by side in a row and wrapped onto the next line when the row is full, so no
  // two boxes overlap; an edge between boxes sums the graph's edges between their members
  Viewer.prototype.drawSubgraph = function (svg, inSuper) {
    var self = this, g = this.g, s = this.state, W = 286, H = 20, GAP = 6, PAD = 8, boxes = {}, member = {};
    s.supernodes.forEach(function (sn) {
      var nodes = sn.slice(1).map(function (id) { return g.byId[id]; });
      boxes["s:" + sn[0]] = { key: "s:" + sn[0], text: sn[0], super: true, nodes: nodes };
      nodes.forEach(function (n) { member[n.id] = "s:" + sn[0]; });
    });
    s.pinned.forEach(function (id) {
      if (inSuper[id]) return;
      var n = g.byId[id];
      boxes[id] = { key: id, text: n.kind === "feature" ? n.label + " " + nodeLabel(n) : nodeLabel(n), nodes: [n] };
      member[id] = id;
    });
    var list = Object.keys(boxes).map(function (k) {
      var b = boxes[k];
      b.row = d3.max(b.nodes, function (n) { return n.row; });
      b.pos = d3.mean(b.nodes, function (n) { return n.pos; });
      b.text = truncate(b.text, 26);
      b.w = self.textBox(b.text).w + 12;
      return b;
    }).sort(function (a, b) { return b.row - a.row || a.pos - b.pos; });
    var y = PAD, x = PAD, row = null;
    list.forEach(function (b) {
      if (row !== null && (b.row !== row || x + b.w > W - PAD)) { y += H + (b.row !== row ? 2.2 * GAP : GAP); x = PAD; }
      row = b.row;
      b.x = x; b.y = y;
      x += b.w + GAP;
    });
    svg.attr("width", W).attr("height", y + H + PAD);
    var sums = {};
    for (var e = 0; e < g.T.length; e++) {
      var a = member[g.nodes[g.S[e]].id], b = member[g.nodes[g.T[e]].id];
      if (a && b && a !== b) sums[a + ">" + b] = (sums[a + ">" + b] || 0) + g.W[e];
    }
    var links = Object.keys(sums).map(function (k) { var ab = k.split(">"); return { s: boxes[ab[0]], t: boxes[ab[1]], w: sums[k] }; });
    var most = d3.max(links, function (d) { return Math.abs(d.w); }) || 1;
    svg.append("g").selectAll("path").data(links).join("path").attr("class", "iv-sub-link")
      .attr("d", function (d) {
        var sx = d.s.x + d.s.w / 2, sy = d.s.y + H / 2, tx = d.t.x + d.t.w / 2, ty = d.t.y + H / 2, my = (sy + ty) / 2;
        return "M" + sx + "," + sy + "C" + sx + "," + my + " " + tx + "," + my + " " + tx + "," + ty;
      })
      .attr("stroke", function (d) { return d.w > 0 ? COLOURS.positive : COLOURS.negative; })
      .attr("stroke-width", function (d) { return 0.6 + 4 * Math.sqrt(Math.abs(d.w) / most); })
      .append("title").text(function (d) { return d.s.text + " \u2192 " + d.t.text + ": " + fmt(d.w); });
    var node = svg.append("g").selectAll("g").data(list).join("g")
      .attr("class", function (b) { return "iv-sub-node" + (b.super ? " iv-sub-super" : ""); })
      .attr("transform", function (b) { return "translate(" + b.x + "," + b.y + ")"; })
      .on("click", function (ev, b) { if (!b.super) self.click(b.key); });
    node.append("rect").attr("width", function (b) { return b.w; }).attr("height", H).attr("rx", 4);
    node.append("text").attr("class", "iv-label").attr("x", 6).attr("y", H / 2).text(function (b) { return b.text; });
    node.append("title").text(function (b) { return b.nodes.map(fullName).join("\n"); });
  };

  // circuit-tracer's graph-file form: metadata, qParams (pinnedIds, supernodes as
  // [label, ...ids], linkType, clickedId, sg_pos), and the pinned nodes with the links among them
  Viewer.prototype.subgraph = function () {
    var g = this.g, s = this.state, ids = new Set(s.pinned), links = [];
    for (var e = 0; e < g.T.length; e++) {
      var t = g.nodes[g.T[e]].id, src = g.nodes[g.S[e]].id;
      if (ids.has(t) && ids.has(src)) links.push({ source: src, target: t, weight: g.W[e] });
    }
    var meta = Object.assign({}, g.data.export.metadata, {
      pruning_settings: { node_threshold: s.nodeThreshold, edge_threshold: s.edgeThreshold },
    });
    return {
      metadata: meta,
      qParams: { pinnedIds: s.pinned.slice(), supernodes: s.supernodes.map(function (sn) { return sn.slice(); }),
                 linkType: "both", clickedId: s.clicked || "", sg_pos: "" },
      nodes: s.pinned.map(function (id) { return g.data.export.nodes[g.byId[id].i]; }),
      links: links,
    };
  };

  Viewer.prototype.download = function () {
    var blob = new Blob([JSON.stringify(this.subgraph(), null, 1)], { type: "application/json" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = (this.g.data.export.metadata.slug || "graph") + "-subgraph.json";
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
  };

  // ---- entry points ---------------------------------------------------------------------

  function mount(element, payload) {
    var data = typeof payload === "string" ? inflate(payload) : Promise.resolve(payload);
    return data.then(function (d) {
      var v = new Viewer(element, d);
      element.__interpViewer = v;
      element.setAttribute("data-viewer-ready", "1");
      return v;
    });
  }

  return { mount: mount, inflate: inflate, prune: prune, Viewer: Viewer };
})();
