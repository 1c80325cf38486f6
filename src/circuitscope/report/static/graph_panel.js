/* The DOM helpers and the side panel's parts of the attribution-graph viewer (graph.html): a node's facts,
 * its links as clickable lists, its top activating contexts and its top logit effects. */
var cgPanel = (function () {
  'use strict';

  var SVGNS = 'http://www.w3.org/2000/svg';
  var EDGE_CAP = 100;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function sv(tag, attrs, parent) {
    var e = document.createElementNS(SVGNS, tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(e);
    return e;
  }

  function fmt(x) {
    if (x === null || x === undefined) return '–';
    var a = Math.abs(x);
    if (a !== 0 && (a < 1e-3 || a >= 1e4)) return x.toExponential(2);
    return x.toFixed(a < 1 ? 4 : 3);
  }

  function signed(x) { return (x >= 0 ? '+' : '') + fmt(x); }

  function edgeList(title, list, other, label) {
    var frag = document.createDocumentFragment();
    frag.appendChild(el('h3', {}, title + ' (' + list.length + ')'));
    var ol = el('ol', { 'class': 'cg-edges', 'data-kind': title.split(' ')[0].toLowerCase() });
    function add(from, to) {
      list.slice(from, to).forEach(function (l) {
        var m = other(l);
        var b = el('button', { type: 'button', 'data-id': m.node_id, 'data-weight': String(l.weight) });
        b.appendChild(el('span', { 'class': 'cg-w ' + (l.weight >= 0 ? 'pos' : 'neg') }, signed(l.weight)));
        b.appendChild(el('span', { 'class': 'cg-label', title: label(m) }, label(m)));
        var li = el('li');
        li.appendChild(b);
        ol.appendChild(li);
      });
    }
    add(0, EDGE_CAP);
    frag.appendChild(ol);
    if (list.length > EDGE_CAP) {
      var more = el('button', { type: 'button', 'class': 'cg-more' }, 'Show all ' + list.length);
      more.addEventListener('click', function () { add(EDGE_CAP, list.length); more.remove(); });
      frag.appendChild(more);
    }
    if (!list.length) frag.appendChild(el('p', { 'class': 'caption' }, 'none'));
    return frag;
  }

  function titled(title, items, body) {
    /* a heading over body(items), or nothing when there are no items */
    var frag = document.createDocumentFragment();
    if (items.length) {
      frag.appendChild(el('h3', {}, title));
      frag.appendChild(body(items));
    }
    return frag;
  }

  function contexts(n) {
    return titled('Top activating contexts', n.top_contexts || [], function (ctxs) {
      var box = el('div', { 'class': 'cg-contexts' });
      var vmax = 0;
      ctxs.forEach(function (c) { c.activations.forEach(function (a) { vmax = Math.max(vmax, Math.abs(a)); }); });
      vmax = vmax || 1;
      ctxs.forEach(function (c) {
        var div = el('div', { 'class': 'cg-ctx' });
        c.tokens.forEach(function (t, i) {
          var a = c.activations[i];
          var alpha = Math.min(1, Math.abs(a) / vmax).toFixed(2);
          var rgb = a >= 0 ? '53,88,212' : '212,64,53';
          div.appendChild(el('span', { 'class': 'tok', title: fmt(a), style: 'background:rgba(' + rgb + ',' + alpha + ')' }, t));
        });
        box.appendChild(div);
      });
      return box;
    });
  }

  function logits(n) {
    return titled('Top logit effects', n.top_logits || [], function (top) {
      var table = el('table', { 'class': 'cg-logits' });
      top.forEach(function (t) {
        var tr = el('tr');
        tr.appendChild(el('td', {}, JSON.stringify(t.token)));
        tr.appendChild(el('td', { 'class': 'num cg-w ' + (t.effect >= 0 ? 'pos' : 'neg') }, signed(t.effect)));
        table.appendChild(tr);
      });
      return table;
    });
  }

  function facts(n, g) {
    var dl = el('dl');
    function add(k, v) { dl.appendChild(el('dt', {}, k)); dl.appendChild(el('dd', {}, v)); }
    add('id', n.node_id);
    add('type', n.feature_type);
    add('layer', String(n.layer));
    add('position', n.ctx_idx + ' ' + JSON.stringify(g.tokenAt(n.ctx_idx)));
    if (cgModel.kind(n) === 'feature') add('feature', String(n.feature));
    if (n.activation !== undefined && n.activation !== null) add('activation', fmt(n.activation));
    if (n.influence !== undefined && n.influence !== null) add('influence', fmt(n.influence));
    if (cgModel.kind(n) === 'logit') add('probability', fmt(n.token_prob || 0) + (n.is_target_logit ? ' (target)' : ''));
    return dl;
  }

  return {
    el: el, sv: sv, fmt: fmt, signed: signed, edgeList: edgeList, contexts: contexts, logits: logits, facts: facts,
  };
})();
