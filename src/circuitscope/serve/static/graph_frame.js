/* The explorer's graph frame: the exported graph page (report/attribution_graph.py) put together from the same
 * files of report/static, which the server serves under /static/ beside this page: the viewer's markup
 * (graph_body.html), the graph the explorer handed over (the frame element's .graph: the viewer JSON of
 * /api/graph, /api/circuit or a graph job's result) where the exported page keeps it, the viewer's style and
 * its scripts in order, the access token passed on. Nothing of the viewer is copied here. */
(function () {
  'use strict';
  var token = new URLSearchParams(window.location.search).get('token');
  function url(name) { return name + (token ? '?token=' + encodeURIComponent(token) : ''); }

  ['house.css', 'graph_viewer.css'].forEach(function (name) {
    var style = document.createElement('link');
    style.rel = 'stylesheet';
    style.href = url(name);
    document.head.appendChild(style);
  });

  function fail(message) {
    document.body.textContent = 'The graph viewer did not load: ' + message;
    document.documentElement.setAttribute('data-cg-failed', message);
  }

  var scripts = ['graph_model.js', 'graph_panel.js', 'graph_viewer.js'];
  function next() {
    if (!scripts.length) return;
    var s = document.createElement('script');
    s.src = url(scripts.shift());
    s.onload = next;
    s.onerror = function () { fail(s.src + ' is missing'); };
    document.body.appendChild(s);
  }

  fetch(url('graph_body.html')).then(function (response) {
    if (!response.ok) throw new Error('graph_body.html: ' + response.status);
    return response.text();
  }).then(function (markup) {
    document.body.insertAdjacentHTML('afterbegin', markup);
    var data = document.createElement('script');
    data.type = 'application/json';
    data.id = 'cg-data';
    data.textContent = JSON.stringify(window.frameElement.graph);
    document.body.appendChild(data);
    next();
  }).catch(function (e) { fail(e.message); });
})();
