/* The explorer's calls to the server: JSON in and out, every error shown in the page's alert bar (an API
 * error is {"error": message, "type": class}), and the access token passed on. A page opened with
 * ?token=TOKEN sends it as "Authorization: Bearer TOKEN" on every call. */

import { byId, clear, el } from './dom.js';

const TOKEN = new URLSearchParams(window.location.search).get('token');

export class ApiError extends Error {
  constructor(message, type, status) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

/** A URL the browser fetches by itself (a script, a style sheet), with the token in its query. */
export function withToken(url) {
  if (!TOKEN) return url;
  return url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(TOKEN);
}

function headers(json) {
  const h = {};
  if (json) h['Content-Type'] = 'application/json';
  if (TOKEN) h.Authorization = 'Bearer ' + TOKEN;
  return h;
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (body && typeof body.error === 'string') return new ApiError(body.error, body.type || 'Error', response.status);
  return new ApiError(`the server answered ${response.status} ${response.statusText}`, 'HTTPError', response.status);
}

async function send(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(`the server did not answer (${e.message}): is circuitscope serve still running?`, 'NetworkError', 0);
  }
  if (!response.ok) throw await failure(response);
  return response;
}

export async function getJSON(path) {
  return (await send('GET', path)).json();
}

export async function postJSON(path, body) {
  return (await send('POST', path, body)).json();
}

export async function del(path) {
  return (await send('DELETE', path)).json();
}

/** POST, then call onLine(object) for each line of the application/x-ndjson answer as it arrives. */
export async function streamLines(path, body, onLine) {
  const response = await send('POST', path, body);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  for (;;) {
    const { done, value } = await reader.read();
    buffered += decoder.decode(value || new Uint8Array(), { stream: !done });
    const lines = buffered.split('\n');
    buffered = lines.pop();
    for (const line of lines) if (line.trim()) onLine(JSON.parse(line));
    if (done) break;
  }
  if (buffered.trim()) onLine(JSON.parse(buffered));
}

export function query(params) {
  return new URLSearchParams(params).toString();
}

/** Show an error in the alert bar (until dismissed or replaced). */
export function showError(error) {
  const box = byId('error');
  const type = error instanceof ApiError ? error.type : error.name || 'Error';
  clear(
    box,
    el('strong', {}, type + ': '),
    el('span', { id: 'error-text' }, error.message),
    el('button', { type: 'button', class: 'dismiss', 'aria-label': 'Dismiss the error', onclick: () => clearError() }, '\u00d7'),
  );
  box.hidden = false;
  box.dataset.type = type;
}

export function clearError() {
  const box = byId('error');
  box.hidden = true;
  clear(box);
}

/** Run an async action from a control: the button shows it is busy, an error goes to the alert bar, and a
 * success clears an earlier error (unless quiet: background polling leaves the alert bar as it is). */
export async function act(button, action, quiet = false) {
  if (button) button.disabled = true;
  if (!quiet) document.body.classList.add('busy');
  try {
    const result = await action();
    if (!quiet) clearError();
    return result;
  } catch (e) {
    showError(e);
    return undefined;
  } finally {
    if (button) button.disabled = false;
    if (!quiet) document.body.classList.remove('busy');
  }
}
