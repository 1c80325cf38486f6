/* A labelled heatmap as an HTML table: row and column labels, axis titles, a colour per cell, optional text
 * in the cells, a tooltip on hover and on keyboard focus, and an optional action on click or Enter. */

import { el } from './dom.js';

/**
 * spec: {rows: [label], cols: [label or Node], color(r, c) -> css, ink(r, c) -> css, text(r, c) -> str | null,
 *        value(r, c) -> number (kept in the cell's data-value), tip(r, c) -> Node | str, onPick(r, c), xTitle,
 *        yTitle, caption, cellClass, vertical (column labels written upwards), id}
 */
export function heatmap(spec) {
  const tip = el('div', { class: 'tip', role: 'tooltip', hidden: true });
  const head = el('tr', {}, el('th', { class: 'corner', scope: 'col' }, spec.yTitle ? `${spec.yTitle} \u2193` : ''));
  spec.cols.forEach((c, j) => head.append(el('th', { scope: 'col', class: 'col', dataset: { col: j } }, c)));
  const body = el('tbody');
  spec.rows.forEach((label, r) => {
    const row = el('tr', {}, el('th', { scope: 'row' }, label));
    spec.cols.forEach((_, c) => {
      const text = spec.text ? spec.text(r, c) : null;
      const cell = el(
        'td',
        {
          class: spec.cellClass || 'cell',
          style: `background:${spec.color(r, c)};color:${spec.ink ? spec.ink(r, c) : 'inherit'}`,
          tabindex: spec.onPick || spec.tip ? '-1' : null,
          role: spec.onPick ? 'button' : null,
          dataset: spec.value ? { row: r, col: c, value: spec.value(r, c) } : { row: r, col: c },
        },
        text === null || text === undefined ? '' : text,
      );
      row.append(cell);
    });
    body.append(row);
  });
  const table = el('table', { class: spec.vertical ? 'heatmap vertical' : 'heatmap', id: spec.id || null }, el('thead', {}, head), body);
  const cellAt = (t) => (t instanceof Element ? t.closest('td[data-row]') : null);
  const show = (cell) => {
    if (!spec.tip) return;
    const r = Number(cell.dataset.row);
    const c = Number(cell.dataset.col);
    tip.replaceChildren(spec.tip(r, c));
    tip.hidden = false;
    const box = cell.getBoundingClientRect();
    const host = wrap.getBoundingClientRect();
    tip.style.left = `${Math.min(box.left - host.left + box.width + 4, host.width - 180)}px`;
    tip.style.top = `${box.top - host.top + box.height + 2}px`;
  };
  table.addEventListener('mouseover', (ev) => { const c = cellAt(ev.target); if (c) show(c); });
  table.addEventListener('mouseleave', () => { tip.hidden = true; });
  table.addEventListener('focusin', (ev) => { const c = cellAt(ev.target); if (c) show(c); });
  table.addEventListener('focusout', () => { tip.hidden = true; });
  table.addEventListener('click', (ev) => {
    const c = cellAt(ev.target);
    if (c && spec.onPick) spec.onPick(Number(c.dataset.row), Number(c.dataset.col));
  });
  table.addEventListener('keydown', (ev) => moveFocus(ev, spec));
  const first = body.querySelector('td');
  if (first && (spec.onPick || spec.tip)) first.tabIndex = 0;  // one tab stop; arrows move inside
  const wrap = el(
    'figure',
    { class: 'heatmap-wrap' },
    spec.xTitle ? el('div', { class: 'axis-title' }, `${spec.xTitle} \u2192`) : null,
    el('div', { class: 'scroll' }, table),
    tip,
    spec.caption ? el('figcaption', { class: 'caption' }, spec.caption) : null,
  );
  return wrap;
}

const STEPS = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };

function moveFocus(ev, spec) {
  const cell = ev.target.closest('td[data-row]');
  if (!cell) return;
  if ((ev.key === 'Enter' || ev.key === ' ') && spec.onPick) {
    ev.preventDefault();
    spec.onPick(Number(cell.dataset.row), Number(cell.dataset.col));
    return;
  }
  const step = STEPS[ev.key];
  if (!step) return;
  ev.preventDefault();
  const r = Number(cell.dataset.row) + step[0];
  const c = Number(cell.dataset.col) + step[1];
  const next = cell.closest('table').querySelector(`td[data-row="${r}"][data-col="${c}"]`);
  if (next) {
    cell.tabIndex = -1;
    next.tabIndex = 0;
    next.focus();
  }
}
