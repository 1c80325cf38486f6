/* The attribution graph as the viewer reads it (graph.html): nodes indexed by id with their links sorted by
 * |weight|, the names shown for nodes, and the grid layout (rows by layer, columns by token position) that the
 * main view and the subgraph share. No DOM here: graph_panel.js and graph_viewer.js build on it. */
var cgModel = (function () {
  'use strict';

  function kind(n) {
    return { 'cross layer transcoder': 'feature', 'mlp reconstruction error': 'error',
      'embedding': 'embedding', 'logit': 'logit' }[n.feature_type];
  }

  function rowKey(n) {
    if (n.feature_type === 'embedding') return -Infinity;
    if (n.feature_type === 'logit') return Infinity;
    return Number(n.layer);
  }

  function rowLabel(k) {
    if (k === -Infinity) return 'Emb';
    if (k === Infinity) return 'Logit';
    return 'L' + k;
  }

  function rowYFor(nRows, top, innerH) {
    return function (r) { return nRows > 1 ? top + innerH - r * innerH / (nRows - 1) : top + innerH / 2; };
  }

  function cellsOf(items, nCols) {
    /* items with .row and .col -> members per cell (ordered) and the widest cell per column */
    var cells = new Map();
    items.forEach(function (it) {
      var key = it.row * nCols + it.col;
      if (!cells.has(key)) cells.set(key, []);
      cells.get(key).push(it);
    });
    var widest = new Array(nCols).fill(1);
    cells.forEach(function (members, key) {
      var c = key % nCols;
      widest[c] = Math.max(widest[c], members.length);
    });
    return { cells: cells, widest: widest };
  }

  function columns(widest, x0, width, minWidth) {
    /* column starts and widths: a minimum each, the rest shared in proportion to the widest cell */
    var n = widest.length;
    var min = Math.min(minWidth, width / n);
    var total = widest.reduce(function (a, b) { return a + b; }, 0);
    var free = Math.max(0, width - min * n);
    var starts = [], widths = [], x = x0;
    widest.forEach(function (w) {
      var cw = min + free * w / total;
      starts.push(x); widths.push(cw); x += cw;
    });
    return { starts: starts, widths: widths };
  }

  function place(grid, cols, rowY) {
    grid.cells.forEach(function (members, key) {
      var c = key % cols.starts.length;
      members.forEach(function (it, k) {
        it.x = cols.starts[c] + cols.widths[c] * (k + 0.5) / members.length;
        it.y = rowY(it.row);
      });
    });
  }


  function index(data) {
    /* circuit-tracer's graph JSON -> nodes with .incoming/.outgoing (by |weight|, descending) and .row */
    var meta = data.metadata || {};
    var tokens = meta.prompt_tokens || [];
    var nodes = data.nodes;
    var links = data.links;
    var byId = new Map();
    var maxW = 0;
    nodes.forEach(function (n) { n.incoming = []; n.outgoing = []; byId.set(n.node_id, n); });
    links.forEach(function (l) {
      l.s = byId.get(l.source);
      l.t = byId.get(l.target);
      l.absw = Math.abs(l.weight);
      if (l.absw > maxW) maxW = l.absw;
      l.s.outgoing.push(l);
      l.t.incoming.push(l);
    });
    function byWeight(a, b) { return b.absw - a.absw; }
    nodes.forEach(function (n) { n.incoming.sort(byWeight); n.outgoing.sort(byWeight); });
    var rowKeys = Array.from(new Set(nodes.map(rowKey))).sort(function (a, b) { return a - b; });
    var rowOf = new Map(rowKeys.map(function (k, i) { return [k, i]; }));
    var nPos = Math.max(1, tokens.length);
    nodes.forEach(function (n) { nPos = Math.max(nPos, n.ctx_idx + 1); n.row = rowOf.get(rowKey(n)); });

    function tokenAt(i) { return i < tokens.length ? tokens[i] : '#' + i; }

    function label(n) {
      if (n.clerp) return n.clerp;
      var tok = JSON.stringify(tokenAt(n.ctx_idx));
      switch (kind(n)) {
        case 'feature': return 'L' + n.layer + ' #' + n.feature + ' @ ' + tok;
        case 'error': return 'Error L' + n.layer + ' @ ' + tok;
        case 'embedding': return 'Emb ' + tok;
        default: return 'Logit ' + n.node_id;
      }
    }

    return {
      meta: meta, tokens: tokens, nodes: nodes, links: links, byId: byId, maxW: maxW || 1,
      drawOrder: links.slice().sort(function (a, b) { return a.absw - b.absw; }),
      rowKeys: rowKeys, nPos: nPos, tokenAt: tokenAt, label: label,
    };
  }

  return {
    kind: kind, rowLabel: rowLabel, rowYFor: rowYFor, cellsOf: cellsOf, columns: columns, place: place, index: index,
  };
})();
