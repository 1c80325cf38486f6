/* The next-token predictions as a table (token, probability with its bar, logit), for the prompt view and
 * for the clean and intervened runs of the intervene view. */

import { bar, el, fmt, pct, tokenSpan } from './dom.js';

export function predictionsTable(predictions, caption, id) {
  const rows = predictions.map((p, i) =>
    el(
      'tr',
      { dataset: { token: p.token, id: p.id, prob: p.prob } },
      el('td', { class: 'num' }, String(i + 1)),
      el('td', {}, tokenSpan(p.token)),
      el('td', { class: 'num' }, pct(p.prob)),
      el('td', {}, bar(p.prob, `probability ${pct(p.prob)}`)),
      el('td', { class: 'num' }, fmt(p.logit)),
    ),
  );
  return el(
    'table',
    { class: 'predictions', id: id || null },
    el('caption', {}, caption),
    el('thead', {}, el('tr', {}, ['#', 'token', 'prob', '', 'logit'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows),
  );
}
