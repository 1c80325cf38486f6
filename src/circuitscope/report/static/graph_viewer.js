/* The attribution-graph viewer of graph.html: plain JS, SVG nodes over a canvas of links.
 * Input: circuit-tracer's graph JSON in <script id="cg-data">, checked by report/attribution_graph.py.
 * State (pinned ids, supernodes) is kept in circuit-tracer's qParams form and exported the same way. */
(function () {
  'use strict';

  function start() {
    var el = cgPanel.el, sv = cgPanel.sv, fmt = cgPanel.fmt, signed = cgPanel.signed;
    var kind = cgModel.kind, cellsOf = cgModel.cellsOf, columns = cgModel.columns, place = cgModel.place;
    var rowYFor = cgModel.rowYFor, rowLabel = cgModel.rowLabel;

    var data = JSON.parse(document.getElementById('cg-data').textContent);
    var g = cgModel.index(data);
    var meta = g.meta, tokens = g.tokens, nodes = g.nodes, links = g.links, byId = g.byId, maxW = g.maxW;
    var drawOrder = g.drawOrder, rowKeys = g.rowKeys, nPos = g.nPos, tokenAt = g.tokenAt, label = g.label;

    var POS = '#3558d4';
    var NEG = '#d44035';

    var mainEl = document.getElementById('cg-main');
    var canvas = document.getElementById('cg-links');
    var svg = document.getElementById('cg-svg');
    var subEl = document.getElementById('cg-sub');
    var subSvg = document.getElementById('cg-sub-svg');
    var panel = document.getElementById('cg-panel');
    var slider = document.getElementById('cg-threshold');
    var msg = document.getElementById('cg-msg');

    var state = { pinned: [], supernodes: [], selected: null, hovered: null, extra: {} };

    nodes.forEach(function (n) { n.col = n.ctx_idx; });
    var mainGrid = cellsOf(nodes, nPos);
    mainGrid.cells.forEach(function (members) {
      members.sort(function (a, b) {
        return (Math.abs(b.influence || 0) - Math.abs(a.influence || 0)) || (b.token_prob || 0) - (a.token_prob || 0);
      });
    });

    var W = 0, H = 0, mainCols = null;
    var M = { left: 46, right: 12, top: 16, bottom: 34 };


    /* ---------- the main view ---------- */

    var axisG = sv('g', { 'class': 'cg-axis' }, svg);
    var hlG = sv('g', { 'class': 'cg-hl' }, svg);
    var nodeG = sv('g', {}, svg);

    nodes.forEach(function (n) {
      var k = kind(n);
      var shape = k === 'feature' ? sv('circle', { r: 4.5 }) : sv('rect', { width: 9, height: 9 });
      shape.setAttribute('class', 'cg-node t-' + k + (n.is_target_logit ? ' cg-target' : ''));
      shape.setAttribute('tabindex', '0');
      shape.setAttribute('role', 'button');
      shape.setAttribute('data-id', n.node_id);
      shape.setAttribute('aria-label', label(n) + ' (' + n.incoming.length + ' in, ' + n.outgoing.length + ' out)');
      sv('title', {}, shape).textContent = label(n);
      nodeG.appendChild(shape);
      n.elem = shape;
    });

    function drawAxes() {
      while (axisG.firstChild) axisG.removeChild(axisG.firstChild);
      if (!nodes.length && !tokens.length) return;
      var y0 = H - M.bottom + 20;
      for (var c = 0; c < nPos; c++) {
        var cx = mainCols.starts[c] + mainCols.widths[c] / 2;
        var tok = tokenAt(c);
        var room = Math.max(2, Math.floor(mainCols.widths[c] / 7));
        var t = sv('text', { x: cx, y: y0, 'text-anchor': 'middle' }, axisG);
        t.textContent = tok.length > room ? tok.slice(0, room - 1) + '…' : tok;
        sv('title', {}, t).textContent = c + ': ' + JSON.stringify(tok);
        if (c > 0) sv('line', { x1: mainCols.starts[c], x2: mainCols.starts[c], y1: M.top - 8, y2: H - M.bottom + 6,
          stroke: '#eef0f4' }, axisG);
      }
      var rowY = rowYFor(rowKeys.length, M.top, H - M.top - M.bottom);
      rowKeys.forEach(function (k, r) {
        sv('text', { x: 6, y: rowY(r) + 4 }, axisG).textContent = rowLabel(k);
      });
    }

    function layoutMain() {
      var box = mainEl.getBoundingClientRect();
      W = Math.max(320, Math.floor(box.width));
      H = Math.max(200, Math.floor(box.height));
      svg.setAttribute('width', W); svg.setAttribute('height', H);
      mainCols = columns(mainGrid.widest, M.left, W - M.left - M.right, 28);
      place(mainGrid, mainCols, rowYFor(rowKeys.length, M.top, H - M.top - M.bottom));
      nodes.forEach(function (n) {
        if (n.elem.tagName === 'circle') {
          n.elem.setAttribute('cx', n.x); n.elem.setAttribute('cy', n.y);
        } else {
          n.elem.setAttribute('x', n.x - 4.5); n.elem.setAttribute('y', n.y - 4.5);
          if (kind(n) === 'logit') n.elem.setAttribute('transform', 'rotate(45 ' + n.x + ' ' + n.y + ')');
        }
      });
      drawAxes();
    }

    function threshold() {
      var v = Number(slider.value) / Number(slider.max);
      return v === 0 ? 0 : maxW * v * v;
    }

    function widthOf(absw, scale) { return 0.4 + 3.6 * absw / scale; }

    function drawLinks() {
      var dpr = window.devicePixelRatio || 1;
      canvas.width = Math.floor(W * dpr); canvas.height = Math.floor(H * dpr);
      canvas.style.width = W + 'px'; canvas.style.height = H + 'px';
      var ctx = canvas.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, W, H);
      var thr = threshold();
      var buckets = [[], []].map(function () { return [[], [], [], [], [], []]; });
      var shown = 0;
      drawOrder.forEach(function (l) {
        if (l.absw < thr) return;
        shown++;
        buckets[l.weight >= 0 ? 0 : 1][Math.min(5, Math.floor(6 * l.absw / maxW))].push(l);
      });
      buckets.forEach(function (bySize, sign) {
        bySize.forEach(function (group, b) {
          if (!group.length) return;
          ctx.beginPath();
          group.forEach(function (l) { ctx.moveTo(l.s.x, l.s.y); ctx.lineTo(l.t.x, l.t.y); });
          ctx.lineWidth = widthOf((b + 0.5) * maxW / 6, maxW);
          ctx.strokeStyle = sign === 0 ? 'rgba(53,88,212,0.35)' : 'rgba(212,64,53,0.35)';
          ctx.stroke();
        });
      });
      var count = document.getElementById('cg-link-count');
      count.textContent = shown + ' of ' + links.length + ' links';
      count.setAttribute('data-shown', String(shown));
      var out = document.getElementById('cg-threshold-value');
      out.textContent = fmt(thr);
      out.setAttribute('data-threshold', String(thr));
    }

    var near = [];
    function focusOn(n) {
      /* highlight one node's edges (hover or selection); null clears */
      near.forEach(function (m) { m.elem.classList.remove('cg-near'); });
      near = [];
      while (hlG.firstChild) hlG.removeChild(hlG.firstChild);
      mainEl.classList.toggle('cg-focus', !!n);
      if (!n) return;
      near.push(n);
      n.incoming.concat(n.outgoing).forEach(function (l) {
        sv('line', { x1: l.s.x, y1: l.s.y, x2: l.t.x, y2: l.t.y, stroke: l.weight >= 0 ? POS : NEG,
          'stroke-width': widthOf(l.absw, maxW) + 0.6, 'stroke-opacity': 0.85,
          'data-source': l.source, 'data-target': l.target }, hlG);
        near.push(l.s === n ? l.t : l.s);
      });
      near.forEach(function (m) { m.elem.classList.add('cg-near'); });
    }

    function refocus() { focusOn(state.hovered || (state.selected && byId.get(state.selected)) || null); }

    function hint() {
      panel.replaceChildren(el('p', { 'class': 'caption' },
        nodes.length ? 'Click a node (or focus it with Tab and press Enter) to list its edges; press P to pin it. '
          + 'Pinned nodes form the subgraph below; check some and group them into a supernode.'
          : 'This graph has no nodes.'));
    }

    function showNode(n) {
      var pinned = state.pinned.indexOf(n.node_id) >= 0;
      panel.replaceChildren(el('h2', { id: 'cg-title' }, label(n)), cgPanel.facts(n, g));
      var pin = el('button', { type: 'button', id: 'cg-pin', 'aria-pressed': String(pinned) },
        pinned ? 'Unpin (P)' : 'Pin to subgraph (P)');
      pin.addEventListener('click', function () { togglePin(n.node_id); });
      panel.appendChild(pin);
      panel.appendChild(cgPanel.edgeList('Incoming edges', n.incoming, function (l) { return l.s; }, label));
      panel.appendChild(cgPanel.edgeList('Outgoing edges', n.outgoing, function (l) { return l.t; }, label));
      panel.appendChild(cgPanel.contexts(n));
      panel.appendChild(cgPanel.logits(n));
    }

    function showSupernode(i) {
      var sn = state.supernodes[i];
      panel.replaceChildren(el('h2', { id: 'cg-title' }, 'Supernode ' + JSON.stringify(sn[0])));
      var members = sn.slice(1).map(function (id) { return byId.get(id); });
      var ol = el('ol', { 'class': 'cg-edges', 'data-kind': 'members' });
      members.forEach(function (m) {
        var li = el('li');
        var b = el('button', { type: 'button', 'data-id': m.node_id });
        b.appendChild(el('span', { 'class': 'cg-label' }, label(m)));
        li.appendChild(b);
        ol.appendChild(li);
      });
      panel.appendChild(el('h3', {}, 'Members (' + members.length + ')'));
      panel.appendChild(ol);
    }

    function select(id) {
      if (state.selected && byId.get(state.selected)) byId.get(state.selected).elem.classList.remove('cg-selected');
      state.selected = id;
      var n = id && byId.get(id);
      if (n) {
        n.elem.classList.add('cg-selected');
        showNode(n);
      } else {
        hint();
      }
      refocus();
      drawSubgraph();
    }

    panel.addEventListener('click', function (ev) {
      var b = ev.target.closest('button[data-id]');
      if (!b) return;
      select(b.getAttribute('data-id'));
      panel.scrollTop = 0;
      panel.focus();
    });

    /* ---------- pinning, supernodes, the subgraph ---------- */

    function supernodeOf(id) {
      for (var i = 0; i < state.supernodes.length; i++) if (state.supernodes[i].indexOf(id, 1) >= 1) return i;
      return -1;
    }

    function togglePin(id) {
      var i = state.pinned.indexOf(id);
      if (i >= 0) {
        state.pinned.splice(i, 1);
        state.supernodes = state.supernodes
          .map(function (sn) { return sn.filter(function (m, j) { return j === 0 || m !== id; }); })
          .filter(function (sn) { return sn.length > 1; });
      } else {
        state.pinned.push(id);
      }
      changed();
    }

    function changed() {
      nodes.forEach(function (n) { n.elem.classList.toggle('cg-pinned', state.pinned.indexOf(n.node_id) >= 0); });
      renderPinned();
      drawSubgraph();
      var refocusPin = document.activeElement && document.activeElement.id === 'cg-pin';
      if (state.selected && byId.get(state.selected)) showNode(byId.get(state.selected));
      if (refocusPin && document.getElementById('cg-pin')) document.getElementById('cg-pin').focus();
    }

    function renderPinned() {
      var ul = document.getElementById('cg-pinned');
      ul.replaceChildren();
      state.pinned.forEach(function (id) {
        if (supernodeOf(id) >= 0) return;
        var n = byId.get(id);
        var li = el('li');
        var lab = el('label', { 'class': 'cg-label', title: label(n) });
        lab.appendChild(el('input', { type: 'checkbox', 'data-id': id }));
        lab.appendChild(document.createTextNode(' ' + label(n)));
        var x = el('button', { type: 'button', 'class': 'cg-x', 'data-unpin': id, 'aria-label': 'Unpin ' + label(n) }, '×');
        li.appendChild(lab); li.appendChild(x);
        ul.appendChild(li);
      });
      if (!ul.childNodes.length) ul.appendChild(el('li', { 'class': 'caption' }, state.pinned.length ? 'all pinned nodes are grouped' : 'none yet'));
      var sul = document.getElementById('cg-supernodes');
      sul.replaceChildren();
      state.supernodes.forEach(function (sn, i) {
        var li = el('li', { 'data-supernode': sn[0] });
        li.appendChild(el('span', { 'class': 'cg-label' }, '▣ ' + sn[0] + ' (' + (sn.length - 1) + ' nodes)'));
        li.appendChild(el('button', { type: 'button', 'data-ungroup': String(i) }, 'Ungroup'));
        sul.appendChild(li);
      });
    }

    document.getElementById('cg-controls').addEventListener('click', function (ev) {
      var t = ev.target;
      if (t.hasAttribute('data-unpin')) togglePin(t.getAttribute('data-unpin'));
      else if (t.hasAttribute('data-ungroup')) { state.supernodes.splice(Number(t.getAttribute('data-ungroup')), 1); changed(); }
    });

    document.getElementById('cg-group').addEventListener('click', function () {
      var ids = Array.from(document.querySelectorAll('#cg-pinned input:checked')).map(function (c) {
        return c.getAttribute('data-id');
      });
      if (!ids.length) { msg.textContent = 'Check one or more pinned nodes to group them.'; return; }
      var input = document.getElementById('cg-sn-name');
      var name = input.value.trim() || 'supernode ' + (state.supernodes.length + 1);
      state.supernodes.push([name].concat(ids));
      input.value = '';
      msg.textContent = 'Grouped ' + ids.length + ' nodes as ' + JSON.stringify(name) + '.';
      changed();
    });

    document.getElementById('cg-clear').addEventListener('click', function () {
      state.pinned = []; state.supernodes = []; changed();
    });

    function qParams() {
      var q = Object.assign({}, state.extra);
      q.pinnedIds = state.pinned.slice();
      q.supernodes = state.supernodes.map(function (sn) { return sn.slice(); });
      q.linkType = q.linkType || 'both';
      q.clickedId = state.selected || '';
      q.sg_pos = q.sg_pos || '';
      return q;
    }

    document.getElementById('cg-export').addEventListener('click', function () {
      var payload = { metadata: { slug: meta.slug || '', prompt: meta.prompt || '' }, qParams: qParams() };
      var blob = new Blob([JSON.stringify(payload, null, 2)], { type: 'application/json' });
      var a = el('a', { href: URL.createObjectURL(blob), download: (meta.slug || 'graph') + '-subgraph.json' });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
      msg.textContent = 'Exported ' + state.pinned.length + ' pinned nodes and ' + state.supernodes.length + ' supernodes.';
    });

    function applyQParams(q, strict) {
      /* circuit-tracer's qParams: pinnedIds (a list, or a comma-separated string) and supernodes [[name, id...]] */
      var pinned = typeof q.pinnedIds === 'string' ? q.pinnedIds.split(',').filter(Boolean) : (q.pinnedIds || []);
      var groups = q.supernodes || [];
      var unknown = pinned.concat.apply(pinned, groups.map(function (g) { return g.slice(1); }))
        .filter(function (id) { return !byId.has(id); });
      if (strict && unknown.length) {
        msg.textContent = 'Not opened: ' + JSON.stringify(unknown[0]) + ' is not a node of this graph '
          + '(the file was exported from another graph).';
        return;
      }
      state.extra = Object.assign({}, q);
      state.pinned = Array.from(new Set(pinned.concat.apply(pinned, groups.map(function (g) { return g.slice(1); }))));
      state.supernodes = groups.map(function (g) { return g.slice(); });
      changed();
    }

    document.getElementById('cg-import').addEventListener('change', function (ev) {
      var file = ev.target.files[0];
      if (!file) return;
      file.text().then(function (text) {
        var parsed;
        try { parsed = JSON.parse(text); } catch (e) { msg.textContent = 'Not opened: the file is not JSON.'; return; }
        var q = parsed && (parsed.qParams || parsed);
        if (!q || typeof q !== 'object' || !('pinnedIds' in q)) {
          msg.textContent = 'Not opened: the file has no qParams with pinnedIds (export one with the button).';
          return;
        }
        applyQParams(q, true);
        if (!msg.textContent.startsWith('Not')) msg.textContent = 'Opened ' + file.name + '.';
      });
      ev.target.value = '';
    });

    function subgraphItems() {
      var items = [];
      state.supernodes.forEach(function (sn, i) {
        var members = sn.slice(1).map(function (id) { return byId.get(id); });
        var mean = function (f) { return members.reduce(function (s, m) { return s + f(m); }, 0) / members.length; };
        items.push({ id: 'supernode-' + i, name: sn[0], members: members, kind: 'supernode',
          rowMain: Math.round(mean(function (m) { return m.row; })), col: Math.round(mean(function (m) { return m.ctx_idx; })) });
      });
      state.pinned.forEach(function (id) {
        if (supernodeOf(id) >= 0) return;
        var n = byId.get(id);
        items.push({ id: id, name: label(n), members: [n], kind: kind(n), node: n, rowMain: n.row, col: n.ctx_idx });
      });
      return items;
    }

    function subgraphEdges(items) {
      /* links among pinned nodes, a supernode's members' links summed, links inside one supernode dropped */
      var owner = new Map();
      items.forEach(function (it) { it.members.forEach(function (m) { owner.set(m.node_id, it.id); }); });
      var sums = new Map();
      links.forEach(function (l) {
        var s = owner.get(l.source), t = owner.get(l.target);
        if (s === undefined || t === undefined || s === t) return;
        var key = s + '\u0000' + t;
        sums.set(key, (sums.get(key) || 0) + l.weight);
      });
      return Array.from(sums, function (e) { var p = e[0].split('\u0000'); return { source: p[0], target: p[1], weight: e[1] }; });
    }

    function drawSubgraph() {
      subSvg.replaceChildren();
      var box = subEl.getBoundingClientRect();
      var w = Math.max(320, Math.floor(box.width)), h = Math.max(140, Math.floor(box.height));
      subSvg.setAttribute('width', w); subSvg.setAttribute('height', h);
      var items = subgraphItems();
      document.getElementById('cg-sub-count').textContent = items.length
        ? items.length + ' nodes (' + state.pinned.length + ' pinned, ' + state.supernodes.length + ' supernodes)' : '';
      if (!items.length) {
        sv('text', { x: w / 2, y: h / 2, 'text-anchor': 'middle', 'class': 'cg-hint' }, subSvg).textContent =
          'Pin nodes (select one and press P) to build a subgraph here.';
        return;
      }
      var usedRows = Array.from(new Set(items.map(function (it) { return it.rowMain; }))).sort(function (a, b) { return a - b; });
      var usedCols = Array.from(new Set(items.map(function (it) { return it.col; }))).sort(function (a, b) { return a - b; });
      items.forEach(function (it) { it.row = usedRows.indexOf(it.rowMain); it.colMain = it.col; it.col = usedCols.indexOf(it.col); });
      var grid = cellsOf(items, usedCols.length);
      var cols = columns(grid.widest, 8, w - 16, 60);
      place(grid, cols, rowYFor(usedRows.length, 22, h - 44));
      var edges = subgraphEdges(items);
      var scale = edges.reduce(function (m, e) { return Math.max(m, Math.abs(e.weight)); }, 0) || 1;
      var at = new Map(items.map(function (it) { return [it.id, it]; }));
      var edgeG = sv('g', {}, subSvg);
      edges.forEach(function (e) {
        var s = at.get(e.source), t = at.get(e.target);
        var dy = (t.y - s.y) / 2;
        var path = sv('path', { 'class': 'cg-sg-edge', d: 'M' + s.x + ',' + s.y + ' C' + s.x + ',' + (s.y + dy) + ' '
          + t.x + ',' + (t.y - dy) + ' ' + t.x + ',' + t.y, stroke: e.weight >= 0 ? POS : NEG,
          'stroke-width': 1 + 5 * Math.abs(e.weight) / scale, 'stroke-opacity': 0.7,
          'data-source': e.source, 'data-target': e.target, 'data-weight': String(e.weight) }, edgeG);
        sv('title', {}, path).textContent = signed(e.weight);
      });
      items.forEach(function (it, idx) {
        var slot = cols.widths[it.col] / Math.max(1, grid.cells.get(it.row * usedCols.length + it.col).length);
        var bw = Math.max(36, Math.min(150, slot - 8)), bh = 22;
        var g = sv('g', { 'class': 'cg-sg-node t-' + it.kind + (state.selected === it.id ? ' cg-selected' : ''),
          tabindex: '0', role: 'button', 'data-id': it.id, 'data-index': String(idx), 'aria-label': it.name,
          transform: 'translate(' + (it.x - bw / 2) + ',' + (it.y - bh / 2) + ')' }, subSvg);
        sv('rect', { width: bw, height: bh, rx: 5 }, g);
        var room = Math.max(3, Math.floor((bw - 8) / 6.2));
        var text = it.kind === 'supernode' ? '▣ ' + it.name : it.name;
        sv('text', { x: 5, y: 15 }, g).textContent = text.length > room ? text.slice(0, room - 1) + '…' : text;
        sv('title', {}, g).textContent = text;
      });
    }

    function openSubgraphItem(target) {
      var g = target.closest('.cg-sg-node');
      if (!g) return;
      var id = g.getAttribute('data-id');
      if (id.indexOf('supernode-') === 0 && !byId.has(id)) {
        select(null);
        showSupernode(Number(id.slice('supernode-'.length)));
      } else {
        select(id);
      }
    }

    subSvg.addEventListener('click', function (ev) { openSubgraphItem(ev.target); });
    subSvg.addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); openSubgraphItem(ev.target); }
    });

    /* ---------- events on the main view ---------- */

    function nodeOf(target) {
      var e = target.closest && target.closest('.cg-node');
      return e ? byId.get(e.getAttribute('data-id')) : null;
    }

    svg.addEventListener('mouseover', function (ev) {
      var n = nodeOf(ev.target);
      if (n && n !== state.hovered) { state.hovered = n; refocus(); }
    });
    svg.addEventListener('mouseout', function (ev) {
      if (state.hovered && !nodeOf(ev.relatedTarget || document.body)) { state.hovered = null; refocus(); }
    });
    svg.addEventListener('focusin', function (ev) { var n = nodeOf(ev.target); if (n) { state.hovered = n; refocus(); } });
    svg.addEventListener('focusout', function () { state.hovered = null; refocus(); });
    svg.addEventListener('click', function (ev) { var n = nodeOf(ev.target); if (n) select(n.node_id); });
    svg.addEventListener('keydown', function (ev) {
      var n = nodeOf(ev.target);
      if (!n) return;
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); select(n.node_id); }
      else if (ev.key === 'p' || ev.key === 'P') { ev.preventDefault(); togglePin(n.node_id); }
    });
    document.addEventListener('keydown', function (ev) {
      var typing = ev.target.tagName === 'INPUT' && ev.target.type === 'text';
      if (ev.key === 'Escape') { select(null); }
      else if (!typing && (ev.key === 'p' || ev.key === 'P') && !nodeOf(ev.target) && state.selected) {
        togglePin(state.selected);
      }
    });

    slider.addEventListener('input', drawLinks);

    var find = document.getElementById('cg-find');
    var options = document.getElementById('cg-find-list');
    nodes.forEach(function (n) { options.appendChild(el('option', { value: n.node_id, label: label(n) })); });
    find.addEventListener('change', function () {
      /* an id from the list, or the first node whose label contains the text */
      var q = find.value.trim().toLowerCase();
      var n = byId.get(find.value.trim()) || nodes.find(function (m) { return q && label(m).toLowerCase().indexOf(q) >= 0; });
      if (n) select(n.node_id);
      msg.textContent = n ? '' : 'No node matches ' + JSON.stringify(find.value) + '.';
    });

    var pending = false;
    function later() {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; render(); });
    }
    if (window.ResizeObserver) {
      var observer = new ResizeObserver(later);
      observer.observe(mainEl);
      observer.observe(subEl);
    } else {
      window.addEventListener('resize', later);
    }

    function render() {
      layoutMain();
      drawLinks();
      refocus();
      drawSubgraph();
    }

    if (!nodes.length) mainEl.appendChild(el('div', { 'class': 'cg-empty' }, 'This graph has no nodes.'));
    render();
    applyQParams(data.qParams || {}, false);
    var clicked = (data.qParams || {}).clickedId;
    if (clicked && byId.has(clicked)) select(clicked); else hint();
    document.documentElement.setAttribute('data-cg-ready', 'true');
  }

  /* after parsing: the page's layout (and so the views' sizes) is final only then */
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
