/* Plain and steered generations side by side, streamed token by token from /api/steer/generate (one
 * {"step", "plain", "steered"} line per new token, then {"done": true, "plain", "steered"}). The steering
 * view and a feature page's slider both generate through this. */

import { act, streamLines } from './api.js';
import { clear, el } from './dom.js';

/** body: {prompt, coefficient, max_new_tokens} and either {vector} or {source, index}. */
export function generateInto(container, body, button) {
  const plain = el('pre', { class: 'gen', 'data-column': 'plain' });
  const steered = el('pre', { class: 'gen', 'data-column': 'steered' });
  const status = el('p', { class: 'caption', role: 'status' }, 'generating\u2026');
  clear(
    container,
    el(
      'div',
      { class: 'side-by-side' },
      el('div', {}, el('h3', {}, 'Without steering'), plain),
      el('div', {}, el('h3', {}, `Steered (coefficient ${body.coefficient})`), steered),
    ),
    status,
  );
  plain.textContent = body.prompt;
  steered.textContent = body.prompt;
  container.dataset.state = 'running';
  return act(button, async () => {
    try {
      await streamLines('/api/steer/generate', body, (line) => {
        if (line.done) {
          plain.dataset.text = line.plain;
          steered.dataset.text = line.steered;
          status.textContent = 'done';
          container.dataset.state = 'done';
          return;
        }
        plain.append(el('span', { class: 'new', dataset: { step: line.step } }, line.plain));
        steered.append(el('span', { class: 'new', dataset: { step: line.step } }, line.steered));
        status.textContent = `${line.step + 1} of ${body.max_new_tokens} tokens`;
      });
    } catch (e) {
      status.textContent = 'stopped: ' + e.message;
      container.dataset.state = 'failed';
      throw e;
    }
  });
}
