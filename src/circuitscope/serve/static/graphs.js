/* The graphs view: open an attribution graph or a circuit file from the server's folders, or a finished
 * graph job, and explore it in the exported page's viewer (report/static, in a frame: graph_frame.html). */

import { act, getJSON, query, withToken } from './api.js';
import { byId, clear, el } from './dom.js';
import { changed, state } from './state.js';

const SOURCES = {
  graph: (ref) => '/api/graph?' + query({ path: ref }),
  circuit: (ref) => '/api/circuit?' + query({ path: ref }),
  job: (ref) => `/api/jobs/${encodeURIComponent(ref)}/result`,
};

export function setup() {
  const { graphs, circuits } = state.info.files;
  const options = [
    ...graphs.map((f) => el('option', { value: 'graph:' + f }, 'graph: ' + f)),
    ...circuits.map((f) => el('option', { value: 'circuit:' + f }, 'circuit: ' + f)),
  ];
  clear(byId('gr-file'), options.length ? options : [el('option', { value: '' }, 'no graph or circuit files in the folders')]);
  byId('gr-open').disabled = !options.length;
}

export function openSelected(button) {
  const value = byId('gr-file').value;
  const at = value.indexOf(':');
  return openGraph(value.slice(0, at), value.slice(at + 1), button);
}

export async function openGraph(kind, ref, button) {
  const graph = await act(button, () => getJSON(SOURCES[kind](ref)));
  if (!graph) return;
  if (!state.graphs.some((g) => g.kind === kind && g.ref === ref)) {
    state.graphs = state.graphs.concat([{ kind, ref }]);
    changed('graphs');
  }
  const frame = el('iframe', { id: 'gr-frame', title: `Attribution graph viewer: ${kind} ${ref}` });
  frame.graph = graph;
  frame.src = withToken('/static/graph_frame.html');
  const prompt = graph.metadata && graph.metadata.prompt;
  clear(
    byId('gr-view'),
    el('p', { class: 'caption', id: 'gr-caption' }, `${kind} ${ref}` + (prompt ? ` \u00b7 ${JSON.stringify(prompt)}` : '') + ` \u00b7 ${graph.nodes.length} nodes \u00b7 ${graph.links.length} links`),
    frame,
  );
  drawOpened();
}

export function drawOpened() {
  clear(
    byId('gr-opened'),
    state.graphs.map((g) =>
      el('li', {}, el('button', { type: 'button', class: 'link', onclick: (ev) => openGraph(g.kind, g.ref, ev.currentTarget) }, `${g.kind} ${g.ref}`)),
    ),
  );
}
