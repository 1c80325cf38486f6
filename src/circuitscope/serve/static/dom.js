/* DOM helpers, number formats and the two colour scales every view shares: sequential (probabilities,
 * attention, activations: white to blue) and diverging (logit attributions: red < 0 < blue, symmetric). */

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

export function byId(id) {
  return document.getElementById(id);
}

/** A number for a person: 4 significant digits, exponent form only when tiny or huge. */
export function fmt(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(2);
  return Number(x.toPrecision(4)).toString();
}

export function signed(x) {
  return (x > 0 ? '+' : '') + fmt(x);
}

export function pct(p) {
  return (100 * p).toFixed(p >= 0.1 ? 1 : 2) + '%';
}

/** A token as it is, with its spaces and newlines made visible. */
export function tok(t) {
  return t.replace(/ /g, '\u00b7').replace(/\n/g, '\u23ce');
}

export function tokenSpan(t, attrs = {}) {
  return el('span', { class: 'tok', title: JSON.stringify(t), ...attrs }, tok(t));
}

const WHITE = [255, 255, 255];
const BLUE = [53, 88, 212];
const RED = [212, 64, 53];

function mix(a, b, t) {
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** Sequential: t in [0, 1] (clamped) from white to blue. */
export function sequential(t) {
  return mix(WHITE, BLUE, Math.max(0, Math.min(1, t)));
}

/** Diverging: x in [-max, max] from red through white to blue. */
export function diverging(x, max) {
  const t = max > 0 ? Math.max(-1, Math.min(1, x / max)) : 0;
  return t >= 0 ? mix(WHITE, BLUE, t) : mix(WHITE, RED, -t);
}

/** Dark text on light cells, light text on dark ones. */
export function inkFor(t) {
  return Math.abs(t) > 0.55 ? '#fff' : '#1d2330';
}

export function maxAbs(values) {
  return values.flat(Infinity).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

/** A colour key: a gradient bar with its end labels. */
export function legend(kind, low, high, caption) {
  const stops = kind === 'diverging' ? `${mix(WHITE, RED, 1)}, #fff, ${mix(WHITE, BLUE, 1)}` : `#fff, ${mix(WHITE, BLUE, 1)}`;
  return el(
    'div',
    { class: 'legend', 'aria-hidden': 'true' },
    el('span', {}, low),
    el('i', { style: `background: linear-gradient(to right, ${stops})` }),
    el('span', {}, high),
    caption ? el('span', { class: 'caption' }, caption) : null,
  );
}

/** A horizontal bar for a value in [0, 1] (a probability), as a sequential-coloured meter. */
export function bar(t, label) {
  return el(
    'span',
    { class: 'bar', role: 'img', 'aria-label': label },
    el('i', { style: `width:${(100 * Math.max(0, Math.min(1, t))).toFixed(1)}%; background:${sequential(0.35 + 0.65 * t)}` }),
  );
}
