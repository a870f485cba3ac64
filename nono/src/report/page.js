// nono report page. Every string in the data is untrusted (file names,
// argv, comm, reasons came from the audited agent): it reaches the DOM
// only through textContent or createTextNode, never innerHTML.
'use strict';
(function () {
  var errors = [];
  window.addEventListener('error', function (ev) { errors.push(String(ev.message)); });

  var D = JSON.parse(document.getElementById('data').textContent);
  var app = document.getElementById('app');
  var SVG = 'http:' + '//www.w3.org/2000/svg';
  var N = D.nodes || [];
  var kids = N.map(function () { return []; });
  N.forEach(function (n, i) { if (n.u !== undefined && n.u !== null) kids[n.u].push(i); });
  var filter = -1; // process index, or -1 for all
  var rendered = 0;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    return e;
  }
  // Control characters and bidi overrides shown as escapes: a name cannot
  // fake lines or reorder what the reader sees.
  function safe(s) {
    return String(s).replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, function (c) {
      if (c === '\n') return '\\n';
      if (c === '\t') return '\\t';
      if (c === '\r') return '\\r';
      return '\\u{' + c.charCodeAt(0).toString(16) + '}';
    });
  }
  function fmt(n) { return Number(n || 0).toLocaleString('en-US'); }
  // Text that may wrap after a '/', '=', ',' or '&' (a path, a command
  // line) as well as at spaces, and nowhere inside a word: a <wbr> element
  // after each of them (text stays text: no markup is parsed).
  function breakable(parent, s) {
    var parts = String(s).split(/([\/=,&])/);
    for (var i = 0; i < parts.length; i++) {
      if (!parts[i]) continue;
      parent.appendChild(document.createTextNode(parts[i]));
      if (i % 2 === 1) parent.appendChild(document.createElement('wbr'));
    }
    return parent;
  }
  function sum(o) { var t = 0; if (o) Object.keys(o).forEach(function (k) { t += o[k]; }); return t; }
  function pathOf(i) {
    var parts = [];
    while (i !== undefined && i !== null && i > 0) { parts.push(N[i].n); i = N[i].u; }
    return '/' + parts.reverse().join('/');
  }
  function kv(parent, k, v, cls) {
    var row = el('div', 'kv' + (cls ? ' ' + cls : ''));
    row.dataset.k = k;
    row.appendChild(el('span', 'k', k));
    row.appendChild(breakable(el('span', 'v'), safe(v)));
    parent.appendChild(row);
    return row;
  }
  function section(title) {
    var s = el('section');
    s.appendChild(el('h2', null, title));
    app.appendChild(s);
    return s;
  }

  // ---- totals per subtree, for the current process filter ----
  var tot = [];
  function own(i) {
    var n = N[i];
    // A profile's tree counts what the compared session's events used of
    // each rule (nothing without --against: a profile has no events).
    if (D.kind === 'profile') return { n: n.r !== undefined && D.rules[n.r] ? D.rules[n.r].used : 0, d: 0 };
    if (filter < 0) return { n: sum(n.o), d: n.d || 0 };
    var c = 0;
    (n.p || []).forEach(function (p) { if (p[0] === filter) c += p[1]; });
    return { n: c, d: 0 };
  }
  function computeTotals() {
    tot = N.map(function (_, i) { var o = own(i); return { n: o.n, d: o.d, s: !!N[i].s }; });
    for (var i = N.length - 1; i > 0; i--) {
      var u = N[i].u, t = tot[i];
      tot[u].n += t.n; tot[u].d += t.d; tot[u].s = tot[u].s || t.s;
    }
  }

  // ---- header ----
  function header() {
    var h = el('header');
    if (D.kind === 'session') {
      var H = D.header;
      if (!H.complete) {
        var w = el('div', 'warn', 'INCOMPLETE SESSION (' + H.state + '): ' + fmt(H.lost) + ' events lost' +
          (H.note ? ' — ' + safe(H.note) : '') + '. What is shown is less than what the agent did.');
        w.id = 'incomplete';
        h.appendChild(w);
      }
      h.appendChild(el('h1', null, 'nono session ' + H.id));
      var cmd = el('div', 'cmd');
      cmd.appendChild(breakable(el('code'), safe((H.command || []).join(' '))));
      h.appendChild(cmd);
      var g = el('div', 'grid');
      kv(g, 'events', fmt(H.events));
      kv(g, 'denied', fmt(H.denied), H.denied > 0 ? 'bad' : '').id = 'denied-count';
      kv(g, 'lost', fmt(H.lost), H.lost > 0 ? 'bad' : '');
      kv(g, 'state', H.state, H.complete ? '' : 'bad');
      kv(g, 'exit', H.exit);
      kv(g, 'duration', H.duration_ms === null || H.duration_ms === undefined ? '-' : H.duration_ms < 1000 ? H.duration_ms + ' ms' : (H.duration_ms / 1000).toFixed(1) + ' s');
      kv(g, 'started', H.started);
      kv(g, 'backend', H.backend); kv(g, 'kernel', H.kernel);
      if (H.host) kv(g, 'host', H.host);
      Object.keys(H.counters || {}).forEach(function (k) { if (H.counters[k] > 0) kv(g, k, fmt(H.counters[k]), 'bad'); });
      kv(g, 'cwd', H.cwd, 'wide');
      kv(g, 'profile', H.profile || '-', 'wide');
      if (H.profile_note) kv(g, 'rules', H.profile_note, 'wide');
      if (H.snapshot) kv(g, 'snapshot', H.snapshot + ' (nono rollback diff ' + H.snapshot + ')', 'wide');
      h.appendChild(g);
    } else {
      h.appendChild(el('h1', null, 'nono profile ' + safe(D.name)));
      var g2 = el('div', 'grid');
      if (D.description) kv(g2, 'description', D.description, 'wide');
      kv(g2, 'rules', fmt(D.rules.length));
      kv(g2, 'learned from sessions', D.sessions.length ? D.sessions.join(', ') : '-');
      kv(g2, 'network', D.network, 'wide');
      if (D.against) {
        kv(g2, 'compared with session', D.against.id + (D.against.host ? ' on ' + D.against.host : '') + ': ' + (D.against.command || []).join(' '), 'wide');
        kv(g2, 'its denials', fmt(D.against.denied), D.against.denied > 0 ? 'bad' : '').id = 'denied-count';
        var unused = D.rules.filter(function (r) { return r.used === 0; }).length;
        kv(g2, 'never used by it', fmt(unused) + ' rule(s): candidates for removal', unused ? 'bad' : '');
        if (D.against.profile_note) kv(g2, 'profile version', D.against.profile_note, 'wide');
        if (!D.against.complete) {
          var w2 = el('div', 'warn', 'The compared session is INCOMPLETE (' + fmt(D.against.lost) + ' events lost): "never used" may be wrong.');
          w2.id = 'incomplete';
          h.appendChild(w2);
        }
      }
      h.appendChild(g2);
    }
    app.appendChild(h);
    var notes = [];
    if (D.capped_nodes > 0) notes.push('The tree holds ' + fmt(N.length) + ' nodes: ' + fmt(D.capped_nodes) + ' deeper nodes are folded into their nearest shown ancestor (marked "folded").');
    if (D.folded_paths > 0) notes.push(fmt(D.folded_paths) + ' events on paths beyond the first ' + fmt(D.max_paths) + ' distinct paths are counted on an ancestor directory.');
    if (D.timeline && D.timeline.bucket_ms > 1000) notes.push('Timeline sampled: each bar sums ' + D.timeline.bucket_ms / 1000 + ' s of events.');
    if (D.timeline && D.timeline.outside > 0) notes.push(fmt(D.timeline.outside) + ' events fall outside the session\'s time range and are not drawn.');
    if (D.other_process_events > 0) notes.push('Only the first ' + fmt(D.max_processes) + ' processes are listed; ' + fmt(D.other_process_events) + ' events of later ones are in the tree only.');
    if (notes.length) {
      var ul = el('ul', 'notes');
      notes.forEach(function (t) { ul.appendChild(el('li', null, t)); });
      app.appendChild(ul);
    }
  }

  // ---- timeline ----
  // One fixed colour per op, chosen by nono (report/palette.rs): the same
  // op has the same colour in every report.
  function opColor(k) { return (D.timeline.colors || [])[k] || '#7f7f7f'; }
  function timeline() {
    var T = D.timeline;
    function secs(i) { return (i * T.bucket_ms / 1000).toFixed(T.bucket_ms < 1000 ? 2 : 0) + ' s'; }
    var s = section('Timeline');
    s.id = 'timeline';
    var W = 1000, Ht = 130, L = 50, B = 20;
    var counts = T.counts || [];
    var max = 1;
    counts.forEach(function (b, i) { var t = 0; b.forEach(function (c) { t += c; }); max = Math.max(max, t, T.denied[i] || 0); });
    var g = svg('svg', { viewBox: '0 0 ' + (W + L) + ' ' + (Ht + B), width: '100%', role: 'img' });
    var bw = W / Math.max(1, counts.length);
    counts.forEach(function (b, i) {
      var y = Ht;
      b.forEach(function (c, k) {
        if (!c) return;
        var h = c / max * Ht;
        y -= h;
        var r = svg('rect', { x: L + i * bw, y: y, width: Math.max(bw - 0.5, 0.5), height: h, fill: opColor(k) });
        var t = svg('title', {});
        t.textContent = secs(i) + ': ' + c + ' ' + T.ops[k];
        r.appendChild(t);
        g.appendChild(r);
      });
    });
    var pts = [];
    (T.denied || []).forEach(function (d, i) {
      if (!d) return;
      var cx = L + i * bw + bw / 2, cy = Ht - d / max * Ht;
      pts.push(cx + ',' + cy);
      var c = svg('circle', { cx: cx, cy: cy, r: 3.5, fill: T.denied_color, 'class': 'denial' });
      var t = svg('title', {});
      t.textContent = secs(i) + ': ' + d + ' denied';
      c.appendChild(t);
      g.appendChild(c);
    });
    if (pts.length > 1) g.insertBefore(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: T.denied_color, 'stroke-width': 1.5 }), g.firstChild);
    g.appendChild(svg('line', { x1: L, y1: Ht, x2: L + W, y2: Ht, stroke: '#888' }));
    var ymax = svg('text', { x: L - 4, y: 10, 'text-anchor': 'end', 'font-size': 11 });
    ymax.textContent = fmt(max);
    g.appendChild(ymax);
    var x0 = svg('text', { x: L, y: Ht + 14, 'font-size': 11 });
    x0.textContent = '0 s';
    g.appendChild(x0);
    var x1 = svg('text', { x: L + W, y: Ht + 14, 'text-anchor': 'end', 'font-size': 11 });
    x1.textContent = secs(counts.length);
    g.appendChild(x1);
    s.appendChild(g);
    var leg = el('div', 'legend');
    leg.id = 'legend';
    T.ops.forEach(function (op, k) {
      var i = el('span', 'item');
      i.dataset.op = op;
      i.dataset.color = opColor(k);
      var sw = el('span', 'swatch');
      sw.style.background = opColor(k);
      i.appendChild(sw);
      i.appendChild(document.createTextNode(op));
      leg.appendChild(i);
    });
    var di = el('span', 'item');
    di.dataset.op = 'denied';
    di.dataset.color = T.denied_color;
    var dsw = el('span', 'swatch');
    dsw.style.background = T.denied_color;
    di.appendChild(dsw);
    di.appendChild(document.createTextNode('denied'));
    leg.appendChild(di);
    leg.appendChild(el('span', 'muted', ' each bar: ' + (T.bucket_ms >= 1000 ? T.bucket_ms / 1000 + ' s' : T.bucket_ms + ' ms') + (T.bucket_ms > 1000 ? ' (sampled)' : '')));
    s.appendChild(leg);
  }

  // ---- network ----
  function network() {
    var X = D.network || [];
    var s = section('Network (' + fmt(X.length) + ' destination' + (X.length === 1 ? '' : 's') + ')');
    s.id = 'network';
    if (!X.length && !D.other_network_events) { s.appendChild(el('p', 'muted', 'No socket was used.')); return; }
    var table = el('table', 'procs net');
    var hr = el('tr');
    ['destination', 'domain', 'protocol', 'role', 'ops', 'events', 'denied', 'processes'].forEach(function (h) { hr.appendChild(el('th', null, h)); });
    table.appendChild(hr);
    X.forEach(function (x) {
      var tr = el('tr', x.denied ? 'denied' : '');
      tr.dataset.role = x.role;
      var where = x.addr !== null && x.addr !== undefined ? x.addr : x.domain ? x.domain : '(' + x.family + ')';
      if (x.port !== null && x.port !== undefined) where = (String(where).indexOf(':') >= 0 ? '[' + where + ']' : where) + ':' + x.port;
      tr.appendChild(breakable(el('td', 'path dest'), safe(where)));
      tr.appendChild(breakable(el('td', 'path'), x.domain ? safe(x.domain) : '-'));
      tr.appendChild(el('td', null, x.proto));
      tr.appendChild(el('td', null, x.role));
      tr.appendChild(el('td', null, Object.keys(x.ops).map(function (k) { return k + ' ' + fmt(x.ops[k]); }).join(', ')));
      tr.appendChild(el('td', 'num', fmt(x.events)));
      var dtd = el('td', 'num' + (x.denied ? ' bad' : ''));
      if (x.denied) dtd.appendChild(el('span', 'badge deny', 'denied ' + fmt(x.denied))); else dtd.textContent = '0';
      tr.appendChild(dtd);
      tr.appendChild(el('td', null, (x.comms || []).map(safe).join(', ')));
      table.appendChild(tr);
    });
    s.appendChild(table);
    if (D.other_network_events) s.appendChild(el('p', 'muted', 'Beyond the first ' + fmt(D.max_destinations) + ' destinations: ' + fmt(D.other_network_events) + ' more events (' + fmt(D.other_network_denied) + ' denied).'));
  }

  // ---- processes ----
  var filterLabel;
  function processes() {
    var P = D.processes || [];
    var s = section('Processes (' + fmt(P.length) + ')');
    s.id = 'processes';
    var byPid = {};
    P.forEach(function (p, i) { byPid[p.pid] = i; });
    var pk = P.map(function () { return []; });
    var roots = [];
    P.forEach(function (p, i) {
      var par = byPid[p.ppid];
      if (par !== undefined && par !== i) pk[par].push(i); else roots.push(i);
    });
    var table = el('table', 'procs');
    var hr = el('tr');
    ['pid', 'ppid', 'comm', 'exe', 'argv', 'events', 'denied', ''].forEach(function (h) { hr.appendChild(el('th', null, h)); });
    table.appendChild(hr);
    var seen = {};
    function row(i, depth) {
      if (seen[i]) return;
      seen[i] = true;
      var p = P[i];
      var tr = el('tr');
      tr.dataset.pid = String(p.pid);
      var pid = el('td', 'num', p.pid);
      pid.style.paddingLeft = (4 + depth * 14) + 'px';
      tr.appendChild(pid);
      tr.appendChild(el('td', 'num', p.ppid));
      tr.appendChild(el('td', null, safe(p.comm)));
      tr.appendChild(breakable(el('td', 'path'), safe(p.exe || '')));
      tr.appendChild(breakable(el('td', 'path'), p.argv ? safe(p.argv.join(' ')) : ''));
      tr.appendChild(el('td', 'num', fmt(p.events)));
      tr.appendChild(el('td', 'num' + (p.denied ? ' bad' : ''), fmt(p.denied)));
      var td = el('td');
      var b = el('button', 'filter', 'show its paths');
      b.addEventListener('click', function () { setFilter(i); });
      td.appendChild(b);
      tr.appendChild(td);
      table.appendChild(tr);
      pk[i].forEach(function (c) { row(c, depth + 1); });
    }
    roots.forEach(function (r) { row(r, 0); });
    s.appendChild(table);
    if (D.no_path && Object.keys(D.no_path).length) {
      s.appendChild(el('p', 'muted', 'Events without a path: ' + Object.keys(D.no_path).map(function (k) { return k + ' ' + fmt(D.no_path[k]); }).join(', ')));
    }
  }
  function setFilter(i) {
    filter = i;
    var P = D.processes || [];
    filterLabel.textContent = i < 0 ? 'all processes' : 'process ' + P[i].pid + ' (' + safe(P[i].comm) + ') only';
    clearBtn.hidden = i < 0;
    drawTree();
    document.getElementById('tree').scrollIntoView();
  }

  // ---- access tree ----
  var treeBox, clearBtn;
  function describeRule(r) {
    var t = 'rule ' + safe(r.spelled) + (r.file ? ' (file)' : '') + ' [' + r.rights.join(', ') + ']';
    if (r.anticipated && r.anticipated.length) t += ' anticipated: ' + r.anticipated.join(', ');
    return t;
  }
  function nodeRow(i) {
    var n = N[i], t = tot[i];
    var wrap = el('div', 'node');
    wrap.dataset.idx = String(i);
    var line = el('div', 'line' + (t.d ? ' denied' : '') + (n.s ? ' sensitive' : ''));
    var tog = el('span', 'tog', kids[i].length ? '▸' : '·');
    line.appendChild(tog);
    var name = el('span', 'name', safe(n.n));
    name.title = safe(pathOf(i));
    line.appendChild(name);
    if (D.kind === 'session') line.appendChild(el('span', 'count', fmt(t.n)));
    else if (D.against && t.n > 0) line.appendChild(el('span', 'count', fmt(t.n) + ' used'));
    if (filter < 0 && n.o) line.appendChild(el('span', 'ops', Object.keys(n.o).map(function (k) { return k + ' ' + n.o[k]; }).join(' · ')));
    if (t.d) line.appendChild(el('span', 'badge deny', 'denied ' + fmt(t.d)));
    if (n.e && filter < 0) line.appendChild(el('span', 'badge err', 'errors ' + fmt(n.e)));
    if (n.s && (i === 0 || N[n.u].s !== n.s)) line.appendChild(el('span', 'badge sens', 'sensitive: ' + safe(n.s)));
    else if (n.s) { /* beneath a flagged ancestor: coloured only */ }
    else if (t.s && kids[i].length) line.appendChild(el('span', 'badge sens-in', 'holds sensitive paths'));
    if (n.f) line.appendChild(el('span', 'badge fold', 'folded ' + fmt(n.f)));
    if (n.r !== undefined && D.rules[n.r]) {
      var r = D.rules[n.r];
      var isOwn = D.kind === 'profile' || pathOf(i) === r.path;
      if (isOwn || i === 0 || N[n.u].r !== n.r) {
        var rc = el('div', 'rule');
        rc.appendChild(el('span', 'rname', describeRule(r)));
        if (r.reason) rc.appendChild(el('span', 'reason', ' — ' + safe(r.reason)));
        if (r.seen_in) rc.appendChild(el('span', 'muted', ' seen in ' + safe(r.seen_in)));
        if (D.kind === 'profile' && D.against) {
          rc.appendChild(r.used ? el('span', 'badge used', 'used ' + fmt(r.used)) : el('span', 'badge unused', 'never used: candidate for removal'));
        }
        line.appendChild(rc);
      }
    } else if (D.kind === 'session' && D.rules.length && own(i).n > 0) {
      line.appendChild(el('span', 'badge norule', 'no rule'));
    }
    wrap.appendChild(line);
    if (kids[i].length) {
      tog.setAttribute('role', 'button');
      tog.tabIndex = 0;
      line.addEventListener('click', function () { toggle(wrap); });
    }
    rendered++;
    return wrap;
  }
  function visibleKids(i) {
    return kids[i].filter(function (c) { return filter < 0 || tot[c].n > 0; });
  }
  function expand(wrap) {
    var i = Number(wrap.dataset.idx);
    if (wrap.classList.contains('open')) return;
    wrap.classList.add('open');
    wrap.firstChild.firstChild.textContent = '▾';
    var box = wrap.querySelector(':scope > .kids');
    if (!box) {
      box = el('div', 'kids');
      wrap.appendChild(box);
      fill(box, visibleKids(i), 0);
    }
    box.hidden = false;
  }
  // Renders a wide directory PAGE children at a time (a "more" line for
  // the rest): opening a directory of 100,000 files stays fast.
  var PAGE = 300;
  function fill(box, list, from) {
    var end = Math.min(list.length, from + PAGE);
    for (var k = from; k < end; k++) box.appendChild(nodeRow(list[k]));
    if (end < list.length) {
      var more = el('button', 'more', 'show ' + Math.min(PAGE, list.length - end) + ' more of ' + fmt(list.length - end));
      more.addEventListener('click', function (ev) { ev.stopPropagation(); box.removeChild(more); fill(box, list, end); });
      box.appendChild(more);
    }
  }
  function collapse(wrap) {
    wrap.classList.remove('open');
    wrap.firstChild.firstChild.textContent = '▸';
    var box = wrap.querySelector(':scope > .kids');
    if (box) box.hidden = true;
  }
  function toggle(wrap) { if (wrap.classList.contains('open')) collapse(wrap); else expand(wrap); }
  function expandAll(limit) {
    var queue = [treeBox.firstChild];
    while (queue.length && rendered < limit) {
      var w = queue.shift();
      if (!w || !w.dataset.idx || !kids[Number(w.dataset.idx)].length) continue;
      expand(w);
      var box = w.querySelector(':scope > .kids');
      for (var c = box.firstChild; c; c = c.nextSibling) if (c.dataset.idx) queue.push(c);
    }
  }
  function drawTree() {
    computeTotals();
    rendered = 0;
    while (treeBox.firstChild) treeBox.removeChild(treeBox.firstChild);
    if (!N.length) { treeBox.appendChild(el('p', 'muted', 'No paths.')); return; }
    var root = nodeRow(0);
    treeBox.appendChild(root);
    // Open the root and every single-child chain below it.
    var w = root;
    for (var depth = 0; w && depth < 64; depth++) {
      expand(w);
      var vk = visibleKids(Number(w.dataset.idx));
      w = vk.length === 1 ? w.querySelector(':scope > .kids').firstChild : null;
    }
    // Then the way to what needs a look: denials first, then sensitive paths.
    var targets = [];
    N.forEach(function (n, i) { if (n.d && own(i).n > 0 && targets.length < 20) targets.push(i); });
    N.forEach(function (n, i) { if (n.s && own(i).n > 0 && targets.length < 30) targets.push(i); });
    targets.forEach(reveal);
  }
  // Expands every ancestor of node i.
  function reveal(i) {
    var chain = [];
    for (var u = N[i].u; u !== undefined && u !== null; u = N[u].u) chain.unshift(u);
    var w = treeBox.firstChild;
    for (var k = 0; k < chain.length && w; k++) {
      expand(w);
      var next = k + 1 < chain.length ? chain[k + 1] : i;
      var box = w.querySelector(':scope > .kids');
      w = null;
      for (var c = box.firstChild; c; c = c.nextSibling) if (c.dataset.idx && Number(c.dataset.idx) === next) { w = c; break; }
    }
  }
  function tree() {
    var s = section(D.kind === 'session' ? 'Access tree' : 'Rules');
    s.id = 'tree';
    var bar = el('div', 'bar');
    filterLabel = el('span', 'flabel', 'all processes');
    clearBtn = el('button', null, 'show all processes');
    clearBtn.hidden = true;
    clearBtn.addEventListener('click', function () { setFilter(-1); });
    var ex = el('button', null, 'expand all');
    ex.addEventListener('click', function () { expandAll(5000); });
    var co = el('button', null, 'collapse');
    co.addEventListener('click', function () { drawTree(); });
    if (D.kind === 'session') { bar.appendChild(el('span', 'muted', 'showing: ')); bar.appendChild(filterLabel); bar.appendChild(clearBtn); }
    bar.appendChild(ex); bar.appendChild(co);
    s.appendChild(bar);
    var leg = el('div', 'legend muted');
    leg.textContent = D.kind === 'session'
      ? 'Each line: name, events in its subtree, its own ops; red = denied accesses; amber = sensitive path; the rule of the learned profile that covers it, with the learner\'s reason.'
      : 'Each rule with its rights and the learner\'s reason' + (D.against ? '; "never used" rules covered nothing the compared session did.' : '.');
    s.appendChild(leg);
    treeBox = el('div', 'tree');
    s.appendChild(treeBox);
    drawTree();
  }

  function rulesTable() {
    if (!D.rules.length) return;
    var s = section('Rules (' + D.rules.length + ')');
    s.id = 'rules';
    var table = el('table', 'procs');
    var hr = el('tr');
    ['rule', 'rights', 'reason', D.kind === 'profile' && !D.against ? 'seen in' : 'events covered'].forEach(function (h) { hr.appendChild(el('th', null, h)); });
    table.appendChild(hr);
    D.rules.forEach(function (r) {
      var tr = el('tr', r.used || (D.kind === 'profile' && !D.against) ? '' : 'unused');
      tr.appendChild(breakable(el('td', 'path'), safe(r.spelled) + (r.file ? ' (file)' : '')));
      tr.appendChild(el('td', null, r.rights.join(', ')));
      tr.appendChild(el('td', null, safe(r.reason || '')));
      tr.appendChild(el('td', 'num', D.kind === 'profile' && !D.against ? safe(r.seen_in || '-') : (r.used ? fmt(r.used) : 'never used')));
      table.appendChild(tr);
    });
    s.appendChild(table);
  }

  // ---- layout, for the browser test: where the legend's swatches are
  // (the test reads their colours from a screenshot taken at the same
  // window size) and which words the header and legend broke in two ----
  function rectOf(e) {
    var r = e.getBoundingClientRect();
    return { x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height };
  }
  function brokenWords(root) {
    var out = [];
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (var t = walker.nextNode(); t; t = walker.nextNode()) {
      var re = /[A-Za-z0-9]{2,}/g, m;
      while ((m = re.exec(t.data)) !== null) {
        var range = document.createRange();
        range.setStart(t, m.index);
        range.setEnd(t, m.index + m[0].length);
        var tops = {};
        Array.prototype.forEach.call(range.getClientRects(), function (r) { if (r.width > 0) tops[Math.round(r.top)] = 1; });
        if (Object.keys(tops).length > 1) out.push(m[0]);
      }
    }
    return out;
  }
  function measure() {
    var out = { broken: [], legend: [], header: '' };
    var head = document.querySelector('header');
    out.header = head ? head.textContent : '';
    out.broken = out.broken.concat(brokenWords(head));
    var notes = document.querySelector('.notes');
    if (notes) out.broken = out.broken.concat(brokenWords(notes));
    var leg = document.getElementById('legend');
    if (leg) {
      out.broken = out.broken.concat(brokenWords(leg));
      Array.prototype.forEach.call(leg.querySelectorAll('.item'), function (i) {
        out.legend.push({ op: i.dataset.op, color: i.dataset.color, swatch: rectOf(i.querySelector('.swatch')) });
      });
    }
    var dc = document.getElementById('denied-count');
    if (dc) out.denied = { text: dc.querySelector('.v').textContent, rect: rectOf(dc.querySelector('.v')) };
    out.width = document.documentElement.clientWidth;
    return out;
  }

  header();
  if (D.kind === 'session') timeline();
  // Measured before anything is clicked: the same layout as a screenshot.
  var layout = location.hash === '#selftest' ? measure() : null;
  tree();
  if (D.kind === 'session') { network(); processes(); }
  rulesTable();

  // ---- self-check for the browser test (file://...#selftest) ----
  if (location.hash === '#selftest') {
    var result = { errors: errors, nodes: N.length, render_ms: Math.round(performance.now()), layout: layout };
    try {
      var before = treeBox.querySelectorAll('.node').length;
      var closed = Array.prototype.find.call(treeBox.querySelectorAll('.node'), function (w) {
        return !w.classList.contains('open') && kids[Number(w.dataset.idx)].length;
      });
      if (closed) {
        closed.firstChild.click();
        result.expanded = closed.classList.contains('open') && closed.querySelectorAll(':scope > .kids > .node').length > 0;
        closed.firstChild.click();
        result.collapsed = !closed.classList.contains('open') && closed.querySelector(':scope > .kids').hidden;
      } else {
        result.expanded = null;
      }
      result.rendered_before = before;
      // The per-process filter: the last process's paths only, then all again.
      var buttons = document.querySelectorAll('#processes button.filter');
      if (buttons.length) {
        var total0 = tot[0].n;
        buttons[buttons.length - 1].click();
        result.filter_label = filterLabel.textContent;
        result.filtered_total = tot[0].n;
        result.filter_narrows = tot[0].n < total0 || buttons.length === 1;
        clearBtn.click();
        result.filter_restored = tot[0].n === total0;
      }
      expandAll(100000);
      result.rendered = treeBox.querySelectorAll('.node').length;
      result.resources = performance.getEntriesByType('resource').length;
      result.scripts = document.scripts.length;
      result.pwned = !!window.pwned;
      result.incomplete_banner = !!document.getElementById('incomplete');
      result.timeline_rects = document.querySelectorAll('#timeline rect').length;
      result.processes = document.querySelectorAll('#processes tr[data-pid]').length;
      result.names = Array.prototype.map.call(treeBox.querySelectorAll('.name'), function (e) { return e.textContent; });
      result.counts = Array.prototype.map.call(treeBox.querySelectorAll('.count'), function (e) { return e.textContent; });
      result.network = Array.prototype.map.call(document.querySelectorAll('#network tr[data-role]'), function (tr) {
        return { dest: tr.querySelector('.dest').textContent, denied: tr.classList.contains('denied'), cells: Array.prototype.map.call(tr.children, function (c) { return c.textContent; }) };
      });
      result.tables_broken = brokenWords(document.getElementById('network') || document.body).concat(brokenWords(document.getElementById('processes') || document.body));
    } catch (e) {
      errors.push(String(e));
    }
    var pre = document.getElementById('selftest');
    pre.textContent = JSON.stringify(result);
    pre.hidden = false;
  }
})();
