// charrnn export --to html: the model, run and sampled in plain JavaScript.
// The forward is charrnn's (charrnn/model.py and charrnn/cells): weights are float32 as stored,
// arithmetic is in float64. Sampling follows charrnn.sample.sample_text: the prime is fed from
// the zero state (after a newline when the prime is empty or the model reads lines), a
// lines-mode model starts afresh at every newline, temperature divides the logits, top-k then
// top-p restrict them, and a character is drawn by inverse CDF (or the likeliest, greedy).
// Long generations run in slices of about SLICE_MS, so the page stays responsive.
(function () {
  "use strict";
  var SLICE_MS = 12;
  var MAX_LENGTH = 20000;  // characters a generation may ask for
  var STATE_BUDGET = 8e6;  // unit values kept for colouring (floats, about 32 MB)
  var TOP = 5;
  var TOP_P_ROUNDING = 1e-12;
  var root = document.documentElement;

  function fail(message) { root.setAttribute("data-charrnn-status", "error: " + message); }
  window.addEventListener("error", function (event) { fail(event.message || "script error"); });

  // --- the model -----------------------------------------------------------------------------

  function decodeTensors(D) {
    var raw = atob(D.weights), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    var all = new Float32Array(bytes.buffer), tensors = {};  // little-endian, as written
    D.tensors.forEach(function (t) { tensors[t[0]] = all.subarray(t[1], t[1] + t[2]); });
    return tensors;
  }

  function sigmoid(a) { return 0.5 + 0.5 * Math.tanh(0.5 * a); }  // as charrnn: no overflow

  // out = W v (+ b): W (rows, cols) row-major
  function matvec(W, v, out, rows, cols, b) {
    for (var r = 0, o = 0; r < rows; r++, o += cols) {
      var s = b ? b[r] : 0;
      for (var k = 0; k < cols; k++) s += W[o + k] * v[k];
      out[r] = s;
    }
  }

  function Model(D) {
    var T = decodeTensors(D);
    var H = D.hidden, L = D.layers, V = D.vocab.length, cell = D.cell, relu = D.activation === "relu";
    var G = { rnn: 1, lstm: 4, gru: 3 }[cell], GH = G * H;
    var layers = [];
    for (var l = 0; l < L; l++) {
      var p = "l" + l + ".";
      layers.push({ Wxh: T[p + "W_xh"], Whh: T[p + "W_hh"], bh: T[p + "b_h"],
                    bhn: T[p + "b_hn"] || null });
    }
    // layer 0 reads one-hot characters: W_xh x + b_h is column x of W_xh plus b_h, a lookup
    var table = new Float64Array(V * GH);
    for (var r = 0; r < GH; r++) {
      for (var x = 0; x < V; x++) table[x * GH + r] = layers[0].Wxh[r * V + x] + layers[0].bh[r];
    }
    var Why = T.W_hy, by = T.b_y;
    var xw = new Float64Array(GH), a = new Float64Array(GH);
    var names = cell === "lstm" ? ["h", "c"] : ["h"];

    this.V = V; this.H = H; this.L = L; this.names = names;
    this.zero = function () {
      var state = [];
      for (var l = 0; l < L; l++) {
        state.push(names.map(function () { return new Float64Array(H); }));
      }
      return state;
    };
    this.reset = function (state) {
      state.forEach(function (layer) { layer.forEach(function (s) { s.fill(0); }); });
    };
    // one character in: the state moves on in place, logits (V) are written
    this.step = function (x, state, logits) {
      for (var l = 0; l < L; l++) {
        var w = layers[l], h = state[l][0];
        if (l === 0) {
          for (var j = 0; j < GH; j++) xw[j] = table[x * GH + j];
        } else {
          matvec(w.Wxh, state[l - 1][0], xw, GH, H, w.bh);
        }
        matvec(w.Whh, h, a, GH, H, null);  // W_hh h_{t-1}
        var k;
        if (cell === "rnn") {
          for (k = 0; k < H; k++) {
            var s = xw[k] + a[k];
            h[k] = relu ? Math.max(s, 0) : Math.tanh(s);
          }
        } else if (cell === "lstm") {
          var c = state[l][1];
          for (k = 0; k < H; k++) {
            var ig = sigmoid(xw[k] + a[k]), fg = sigmoid(xw[H + k] + a[H + k]);
            var gg = Math.tanh(xw[2 * H + k] + a[2 * H + k]);
            var og = sigmoid(xw[3 * H + k] + a[3 * H + k]);
            c[k] = fg * c[k] + ig * gg;  // c_t = f c_{t-1} + i g
            h[k] = og * Math.tanh(c[k]);  // h_t = o tanh(c_t)
          }
        } else {
          for (k = 0; k < H; k++) {
            var rg = sigmoid(xw[k] + a[k]), zg = sigmoid(xw[H + k] + a[H + k]);
            var n = Math.tanh(xw[2 * H + k] + rg * (a[2 * H + k] + w.bhn[k]));
            h[k] = n + zg * (h[k] - n);  // h_t = (1 - z) n + z h_{t-1}
          }
        }
      }
      matvec(Why, state[L - 1][0], logits, V, H, by);
    };
  }

  function softmax(logits) {
    var V = logits.length, max = -Infinity, total = 0, p = new Float64Array(V), i;
    for (i = 0; i < V; i++) max = Math.max(max, logits[i]);
    for (i = 0; i < V; i++) { p[i] = Math.exp(logits[i] - max); total += p[i]; }
    for (i = 0; i < V; i++) p[i] /= total;
    return p;
  }

  // charrnn.sample.probabilities: softmax(logits / T), top-k, then top-p
  function shaped(logits, temperature, topK, topP) {
    var V = logits.length, s = new Float64Array(V), i, finite = true;
    for (i = 0; i < V; i++) { s[i] = logits[i] / temperature; finite = finite && isFinite(s[i]); }
    if (!finite) {  // a temperature so small that it overflows: the likeliest alone
      var best = argmax(logits);
      for (i = 0; i < V; i++) s[i] = logits[i] === logits[best] ? 0 : -Infinity;
    }
    if (topK && topK < V) {
      var kth = Array.from(s).sort(function (x, y) { return y - x; })[topK - 1];
      for (i = 0; i < V; i++) if (s[i] < kth) s[i] = -Infinity;
    }
    var p = softmax(s);
    if (topP < 1) {
      var order = Array.from(p.keys()).sort(function (x, y) { return p[y] - p[x] || x - y; });
      var before = 0, total = 0, keep = new Uint8Array(V);
      order.forEach(function (index, rank) {
        keep[index] = rank === 0 || before < topP - TOP_P_ROUNDING ? 1 : 0;
        before += p[index];
      });
      for (i = 0; i < V; i++) { if (!keep[i]) p[i] = 0; total += p[i]; }
      for (i = 0; i < V; i++) p[i] /= total;
    }
    return p;
  }

  function argmax(values) {
    var best = 0;
    for (var i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
    return best;
  }

  function drawIndex(p, u) {  // inverse CDF: the number of cdf entries <= u * total
    var total = 0, i;
    for (i = 0; i < p.length; i++) total += p[i];
    var target = u * total, cdf = 0;
    for (i = 0; i < p.length; i++) { cdf += p[i]; if (cdf > target) return i; }
    return p.length - 1;
  }

  function mulberry32(seed) {  // a small seeded generator: uniform numbers in [0, 1)
    var t = seed >>> 0;
    return function () {
      t = (t + 0x6D2B79F5) >>> 0;
      var r = Math.imul(t ^ (t >>> 15), 1 | t);
      r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
      return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
    };
  }

  // --- a generation: the prime, then one character a step -------------------------------------

  function Generation(model, D, options) {
    var chars = D.vocab, lines = D.mode === "lines", boundary = D.boundary;
    var start = boundary >= 0 ? boundary : 0;
    var prime = Array.from(options.prime);
    var feed = prime.map(function (ch) { return chars.indexOf(ch); });
    var shown = feed.slice();  // indices on the page: the prime, then what is generated
    if (lines || feed.length === 0) feed.unshift(start);
    var state = model.zero(), logits = new Float64Array(model.V), fed = false;
    var random = mulberry32(options.seed);
    var records = [], self = this, keep = true, kept = 0;
    var width = model.L * model.names.length * model.H;

    function snapshot() {
      if (!keep || kept + width > STATE_BUDGET) { keep = false; return null; }
      var values = new Float32Array(width), o = 0;
      state.forEach(function (layer) {
        layer.forEach(function (s) { values.set(s, o); o += s.length; });
      });
      kept += width;
      return values;
    }
    function record(x, drawnP) {
      var p = fed ? softmax(logits) : null;
      var top = null;
      if (p) {
        top = Array.from(p.keys()).sort(function (i, j) { return p[j] - p[i] || i - j; })
          .slice(0, TOP).map(function (i) { return [i, p[i]]; });
      }
      return { x: x, p: p ? p[x] : null, top: top, drawn: drawnP };
    }
    function advance(x) {
      if (lines && x === boundary) model.reset(state);  // lines mode: every name starts afresh
      model.step(x, state, logits);
      fed = true;
    }
    // the prime: fed whole; its characters on the page get their probabilities where the
    // model predicted them
    var offset = feed.length - shown.length;
    feed.forEach(function (x, i) {
      var rec = i >= offset ? record(x, null) : null;
      advance(x);
      if (rec) { rec.state = snapshot(); rec.prime = true; records.push(rec); }
    });
    this.records = records;
    this.done = options.length === 0;
    this.generated = 0;
    this.step = function () {
      var p = options.greedy ? null : shaped(logits, options.temperature, options.topK,
                                             options.topP);
      var x = options.greedy ? argmax(logits) : drawIndex(p, random());
      var rec = record(x, p ? p[x] : null);
      advance(x);
      rec.state = snapshot();
      records.push(rec);
      self.generated += 1;
      self.done = self.generated >= options.length;
    };
    this.text = function () {
      return records.map(function (rec) { return chars[rec.x]; }).join("");
    };
  }

  function checkPrime(D, prime) {
    var unknown = [];
    Array.from(prime).forEach(function (ch) {
      if (D.vocab.indexOf(ch) < 0 && unknown.indexOf(ch) < 0) unknown.push(ch);
    });
    return unknown;
  }

  // --- start ---------------------------------------------------------------------------------

  var D = JSON.parse(document.getElementById("charrnn-model").textContent);
  D.vocab = Array.from(D.vocab);  // code points, as Python counts them
  var model = new Model(D);

  // hooks for tests and for anyone who wants the numbers
  window.charrnnProbs = function (text) {  // next-character probabilities after each character
    var state = model.zero(), logits = new Float64Array(model.V), out = [];
    Array.from(text).forEach(function (ch) {
      var x = D.vocab.indexOf(ch);
      if (x < 0) throw new Error("character outside the vocabulary: " + JSON.stringify(ch));
      model.step(x, state, logits);
      out.push(Array.from(softmax(logits)));
    });
    return out;
  };
  window.charrnnGreedy = function (prime, n) {  // as charrnn sample --greedy --length n
    var unknown = checkPrime(D, prime);
    if (unknown.length) throw new Error("outside the vocabulary: " + unknown.join(""));
    var g = new Generation(model, D, { prime: prime, length: n, greedy: true, seed: 0 });
    while (!g.done) g.step();
    return g.text();
  };
  window.charrnnSample = function (options) {  // the same draws as the Generate button
    var g = new Generation(model, D, options);
    while (!g.done) g.step();
    return g.text();
  };

  ui();
  root.setAttribute("data-charrnn-status", "ok");

  // --- the page ------------------------------------------------------------------------------

  function ui() {
    var $ = function (id) { return document.getElementById(id); };
    function el(tag, cls, text) {
      var node = document.createElement(tag);
      if (cls) node.className = cls;
      if (text !== undefined) node.textContent = text;
      return node;
    }
    function visible(ch) {
      if (ch === " ") return "\u2423";
      if (ch === "\n") return "\u21b5";
      if (ch === "\t") return "\u21e5";
      var code = ch.codePointAt(0);
      return code < 32 || code === 127 ? "\\x" + code.toString(16).padStart(2, "0") : ch;
    }
    function pct(p) {
      if (p < 0.001) return "<0.1%";
      return (100 * p).toFixed(p < 0.1 ? 1 : 0) + "%";
    }

    D.facts.forEach(function (pair) {
      var li = el("li");
      li.appendChild(el("b", "", pair[0]));
      li.appendChild(document.createTextNode(pair[1]));
      $("facts").appendChild(li);
    });
    $("title").textContent = D.title;
    document.title = "charrnn: " + D.title;
    $("length").value = D.mode === "lines" ? 200 : 500;
    $("length").max = MAX_LENGTH;

    // unit series: layer l h (and c)
    var series = [];
    for (var l = 0; l < model.L; l++) {
      model.names.forEach(function (name, k) {
        series.push({ name: "layer " + l + " " + name,
                      offset: (l * model.names.length + k) * model.H });
      });
    }
    var select = $("series");
    series.forEach(function (s, k) {
      var option = el("option", "", s.name); option.value = k; select.appendChild(option);
    });
    $("unit").max = model.H - 1;
    var view = { by: "p", series: 0, unit: 0, pinned: -1 };
    var spans = [], current = null, uniform = Math.log(model.V);

    function pColour(p) {  // white when likely, deep red at a uniform guess's 1/V or below
      var t = p === null ? 0 : Math.max(0, Math.min(1, -Math.log(p) / Math.max(uniform, 1e-9)));
      return "hsl(4, 88%, " + (100 - 50 * t).toFixed(1) + "%)";
    }
    function unitColour(v, m) {
      var t = Math.max(-1, Math.min(1, v / m)), light = (100 - 48 * Math.abs(t)).toFixed(1);
      return t < 0 ? "hsl(212, 85%, " + light + "%)" : "hsl(14, 88%, " + light + "%)";
    }
    function unitRange() {  // tanh's h is in (-1, 1); c and relu's h on their largest value
      var s = series[view.series];
      if (/ h$/.test(s.name) && D.activation !== "relu") return 1;
      var m = 1e-9;
      (current ? current.records : []).forEach(function (rec) {
        if (rec.state) m = Math.max(m, Math.abs(rec.state[s.offset + view.unit]));
      });
      return m;
    }
    function paintOne(i, m) {
      var rec = current.records[i], span = spans[i];
      if (view.by === "unit") {
        span.style.backgroundColor = rec.state ?
          unitColour(rec.state[series[view.series].offset + view.unit], m) : "";
      } else {
        span.style.backgroundColor = rec.p === null ? "" : pColour(rec.p);
      }
    }
    function paint() {
      var m = view.by === "unit" ? unitRange() : 1;
      for (var i = 0; i < spans.length; i++) paintOne(i, m);
      var stops = [], k;
      if (view.by === "unit") {
        for (k = 0; k <= 10; k++) stops.push(unitColour(-m + 2 * m * k / 10, m));
        $("legendlo").textContent = (-m).toPrecision(2);
        $("legendhi").textContent = m.toPrecision(2);
        $("legendname").textContent = series[view.series].name + ", unit " + view.unit;
      } else {
        for (k = 0; k <= 10; k++) stops.push(pColour(Math.exp(-uniform * k / 10)));
        $("legendlo").textContent = "p 1";
        $("legendhi").textContent = "1/" + model.V;
        $("legendname").textContent = "probability the model gave it";
      }
      $("legendbar").style.background = "linear-gradient(to right, " + stops.join(", ") + ")";
      root.classList.toggle("by-p", view.by !== "unit");
      Array.from($("colourby").querySelectorAll("button")).forEach(function (b) {
        b.classList.toggle("on", b.dataset.by === view.by);
      });
      $("unitlabel").textContent = "unit " + view.unit + "/" + model.H;
    }
    $("colourby").addEventListener("click", function (event) {
      var by = event.target.dataset && event.target.dataset.by;
      if (by) { view.by = by; paint(); }
    });
    select.addEventListener("change", function () { view.series = +select.value; view.by = "unit"; paint(); });
    $("unit").addEventListener("input", function () { view.unit = +$("unit").value; view.by = "unit"; paint(); });

    function inspect(i) {
      var list = $("guesses"); list.textContent = "";
      if (!current || i < 0 || i >= current.records.length) return;
      var rec = current.records[i], ch = D.vocab[rec.x];
      $("bigchar").textContent = visible(ch);
      $("where").textContent = (rec.prime ? "prime" : "generated") + " \u00b7 #" + i;
      var line = rec.p === null ? "Nothing predicted this character (the start)." :
        "The model gave it p = " + pct(rec.p) + " (" + (-Math.log(rec.p)).toFixed(2) + " nats)";
      if (rec.drawn !== null && rec.drawn !== undefined) line += "; drawn with p = " + pct(rec.drawn);
      if (view.by === "unit" && rec.state) {
        line += "; " + series[view.series].name + " unit " + view.unit + " = " +
          rec.state[series[view.series].offset + view.unit].toFixed(3);
      }
      $("pline").textContent = line + ".";
      (rec.top || []).forEach(function (pair) {
        var guess = D.vocab[pair[0]], li = el("li", pair[0] === rec.x ? "hit" : "");
        li.appendChild(el("span", "g", visible(guess)));
        var bar = el("span", "pbar"), fill = el("i");
        fill.style.width = (100 * pair[1]).toFixed(1) + "%"; bar.appendChild(fill);
        li.appendChild(bar);
        li.appendChild(el("span", "p", pct(pair[1])));
        list.appendChild(li);
      });
    }
    var box = $("text");
    box.addEventListener("mouseover", function (event) {
      var i = event.target.dataset ? event.target.dataset.i : undefined;
      if (i !== undefined && view.pinned < 0) inspect(+i);
    });
    box.addEventListener("click", function (event) {
      var i = event.target.dataset ? event.target.dataset.i : undefined;
      if (i === undefined) return;
      if (view.pinned >= 0 && spans[view.pinned]) spans[view.pinned].classList.remove("pinned");
      view.pinned = +i === view.pinned ? -1 : +i;
      if (view.pinned >= 0) spans[view.pinned].classList.add("pinned");
      inspect(+i);
    });

    function append(from) {  // spans for records[from..]
      var m = view.by === "unit" ? unitRange() : 1, fragment = document.createDocumentFragment();
      for (var i = from; i < current.records.length; i++) {
        var rec = current.records[i], ch = D.vocab[rec.x];
        var span = el("span", "ch" + (rec.prime ? " prime" : "") + (ch === "\n" ? " nl" : ""),
                      ch === "\n" ? "\u21b5" : ch);
        span.dataset.i = i;
        spans.push(span);
        fragment.appendChild(span);
        if (ch === "\n") fragment.appendChild(document.createTextNode("\n"));
        paintOne(i, m);
      }
      box.appendChild(fragment);
    }

    function number(id, fallback) {
      var text = $(id).value.trim();
      return text === "" ? fallback : Number(text);
    }
    function options() {
      var o = { prime: $("prime").value, temperature: number("temperature", 1),
                topK: number("topk", 0), topP: number("topp", 1), length: number("length", 500),
                seed: number("seed", 0), greedy: $("greedy").checked };
      if (!(o.temperature > 0) || !isFinite(o.temperature)) return "temperature must be > 0";
      if (!(Number.isInteger(o.topK) && o.topK >= 0)) return "top-k must be a whole number (0: all)";
      if (!(o.topP > 0 && o.topP <= 1)) return "top-p must be in (0, 1]";
      if (!(Number.isInteger(o.length) && o.length >= 1 && o.length <= MAX_LENGTH)) {
        return "length must be a whole number from 1 to " + MAX_LENGTH;
      }
      if (!(Number.isInteger(o.seed) && o.seed >= 0)) return "seed must be a whole number >= 0";
      var unknown = checkPrime(D, o.prime);
      if (unknown.length) {
        return "the prime has characters outside the model's vocabulary: " +
          unknown.map(function (ch) { return JSON.stringify(ch); }).join(", ");
      }
      return o;
    }

    var running = null;
    function finish(status) {
      running = null;
      $("generate").disabled = false; $("stop").disabled = true;
      window.charrnnLast = current.text();
      root.setAttribute("data-charrnn-run", status);
      paint();
    }
    $("controls").addEventListener("submit", function (event) {
      event.preventDefault();
      var o = options();
      $("message").textContent = typeof o === "string" ? o : "";
      if (typeof o === "string") return;
      current = new Generation(model, D, o);
      spans = []; box.textContent = ""; view.pinned = -1;
      append(0);
      $("generate").disabled = true; $("stop").disabled = false;
      root.setAttribute("data-charrnn-run", "generating");
      var token = running = {};
      function slice() {
        if (running !== token) return;
        var shownUpTo = current.records.length, until = performance.now() + SLICE_MS;
        while (!current.done && performance.now() < until) current.step();
        append(shownUpTo);
        $("progress").textContent = current.generated + " of " + o.length + " characters";
        if (current.done) finish("done");
        else setTimeout(slice, 0);
      }
      setTimeout(slice, 0);
    });
    $("stop").addEventListener("click", function () { if (running) finish("stopped"); });
    paint();
  }
})();
