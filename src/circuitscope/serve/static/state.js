/* The user's open work, shared by the views and saved by sessions.js: the server's facts (/api/info), the
 * current prompt and answer pair, the prompts run so far, the interventions and the graphs opened. A view
 * that changes it calls changed(what); the views listening for that part redraw. */

export const state = {
  info: null,
  prompt: '',
  answer: '',
  wrong: '',
  prompts: [],
  interventions: [],
  graphs: [],
};

const listeners = new Map();

export function on(what, fn) {
  if (!listeners.has(what)) listeners.set(what, []);
  listeners.get(what).push(fn);
}

export function changed(what) {
  for (const fn of listeners.get(what) || []) fn(state);
}

/** The prompt bar's values (the prompt, and the answer pair when both are given), as an API body. */
export function promptBody() {
  const body = { prompt: state.prompt };
  if (state.answer && state.wrong) {
    body.answer = state.answer;
    body.wrong = state.wrong;
  }
  return body;
}

export function remember(prompt) {
  state.prompts = [prompt, ...state.prompts.filter((p) => p !== prompt)].slice(0, 20);
}
