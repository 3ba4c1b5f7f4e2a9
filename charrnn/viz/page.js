(function () {
  "use strict";
  var root = document.documentElement;
  function fail(message) { root.setAttribute("data-viz-status", "error: " + message); }
  window.addEventListener("error", function (event) { fail(event.message || "script error"); });
  try { main(); } catch (error) { fail(String(error && error.stack || error)); throw error; }

  function main() {
    var D = JSON.parse(document.getElementById("viz-data").textContent);
    var chars = Array.from(D.text);  // code points, as Python counts them
    var N = chars.length, K = D.k, lines = D.mode === "lines";
    var $ = function (id) { return document.getElementById(id); };
    function el(tag, cls, text) {
      var node = document.createElement(tag);
      if (cls) node.className = cls;
      if (text !== undefined) node.textContent = text;
      return node;
    }
    var series = D.series.map(function (s) {
      var raw = atob(s.q), q = new Uint8Array(raw.length);
      for (var i = 0; i < raw.length; i++) q[i] = raw.charCodeAt(i);
      var cols = s.lo.length, units = s.units || null;
      return { name: s.name, kind: s.kind, total: s.total, units: units, cols: cols, q: q,
               lo: s.lo, hi: s.hi, fixed: s.fixed };
    });
    function value(s, i, col) {
      var b = s.q[i * s.cols + col];
      if (b === 255) return NaN;
      return s.lo[col] + b * (s.hi[col] - s.lo[col]) / 254;
    }
    function unitId(s, col) { return s.units ? s.units[col] : col; }
    function colOf(s, unit) {
      if (!s.units) return unit >= 0 && unit < s.cols ? unit : -1;
      return s.units.indexOf(unit);
    }

    // --- colours ---------------------------------------------------------------------------
    function lossColour(nats) {
      var t = Math.max(0, Math.min(1, nats / Math.max(D.uniform, 1e-9)));
      return "hsl(4, 88%, " + (100 - 50 * t).toFixed(1) + "%)";
    }
    function divergingColour(t) {  // t in [-1, 1]
      t = Math.max(-1, Math.min(1, t));
      var light = (100 - 48 * Math.abs(t)).toFixed(1);
      return t < 0 ? "hsl(212, 85%, " + light + "%)" : "hsl(14, 88%, " + light + "%)";
    }
    function sequentialColour(t) {  // t in [0, 1]
      t = Math.max(0, Math.min(1, t));
      return "hsl(268, 60%, " + (100 - 46 * t).toFixed(1) + "%)";
    }
    function unitScale(s, col) {  // {lo, hi, colour(v)} for one unit
      var lo, hi;
      if (s.fixed) { lo = s.fixed[0]; hi = s.fixed[1]; }
      else { lo = s.lo[col]; hi = s.hi[col]; }
      if (lo >= 0) {
        var top = s.fixed ? hi : Math.max(hi, 1e-9);
        return { lo: 0, hi: top, colour: function (v) { return sequentialColour(v / top); } };
      }
      var m = s.fixed ? Math.max(-lo, hi) : Math.max(Math.abs(lo), Math.abs(hi), 1e-9);
      return { lo: -m, hi: m, colour: function (v) { return divergingColour(v / m); } };
    }

    // --- header ----------------------------------------------------------------------------
    var facts = $("facts");
    D.facts.forEach(function (pair) {
      var li = el("li");
      li.appendChild(el("b", "", pair[0]));
      li.appendChild(document.createTextNode(pair[1]));
      facts.appendChild(li);
    });
    var checkpointFact = D.facts.filter(function (p) { return p[0] === "checkpoint"; })[0];
    if (checkpointFact) {
      var base = checkpointFact[1].split(/[\\/]/).pop();
      document.title = "charrnn viz: " + base;
      $("subtitle").textContent = base;
    }
    $("uniformnote").textContent = "Deep red: as unlikely as a uniform guess among its " +
      D.vocab.length + " characters (ln " + D.vocab.length + " = " + D.uniform.toFixed(2) +
      " nats) or worse.";

    if (lines) $("featurelist").textContent = "position in the name, vowel";

    // --- the text --------------------------------------------------------------------------
    function shown(ch) {
      if (ch === "\n") return "\u23ce";
      if (ch === "\t") return "\t";
      var code = ch.codePointAt(0);
      if (code < 32) return String.fromCodePoint(0x2400 + code);
      if (code === 127) return "\u2421";
      return ch;
    }
    function describe(ch) {
      if (ch === "\n") return lines ? "end of name" : "newline";
      if (ch === " ") return "space";
      if (ch === "\t") return "tab";
      var code = ch.codePointAt(0);
      var hex = "U+" + code.toString(16).toUpperCase().padStart(4, "0");
      if (code < 32 || code === 127) return "control character " + hex;
      return "\u201c" + ch + "\u201d " + hex;
    }
    var box = $("text");
    if (lines) box.classList.add("names");
    var spans = new Array(N), row = null, line = 0, column = 0, where = new Array(N);
    var fragment = document.createDocumentFragment();
    for (var i = 0; i < N; i++) {
      var ch = chars[i];
      var span = el("span", "ch", shown(ch));
      span.dataset.i = i;
      if (ch === "\n") span.classList.add("nl");
      if (D.known[i] !== "1") span.classList.add("unk");
      spans[i] = span;
      where[i] = [line, column];
      if (lines) {
        if (!row) { row = el("div", "row"); fragment.appendChild(row); }
        row.appendChild(span);
        if (ch === "\n") { row = null; }
      } else {
        fragment.appendChild(span);
        if (ch === "\n") fragment.appendChild(document.createElement("br"));
      }
      if (ch === "\n") { line += 1; column = 0; } else { column += 1; }
    }
    box.appendChild(fragment);

    // --- state -----------------------------------------------------------------------------
    var state = { by: "loss", series: 0, col: 0, pinned: -1, shownAt: -1 };
    var lastH = -1;
    series.forEach(function (s, k) { if (s.kind === "h" && !s.units) lastH = k; });
    state.series = lastH >= 0 ? lastH : 0;

    var select = $("series");
    series.forEach(function (s, k) {
      var label = s.name + (s.units ? " (" + s.units.length + " of " + s.total + " units)" : "");
      var option = el("option", "", label); option.value = k; select.appendChild(option);
    });
    if (!series.length) {
      select.disabled = true; $("unit").disabled = true;
      $("colourby").querySelector("[data-by=unit]").disabled = true;
    }

    function paint() {
      var s = series[state.series];
      if (state.by === "unit" && s) {
        var scale = unitScale(s, state.col);
        for (var i = 0; i < N; i++) {
          var v = value(s, i, state.col);
          spans[i].style.backgroundColor = isNaN(v) ? "" : scale.colour(v);
        }
        legend(scale.lo, scale.hi, scale.colour, s.name + ", unit " + unitId(s, state.col));
      } else {
        for (var j = 0; j < N; j++) {
          var loss = D.loss[j];
          spans[j].style.backgroundColor = loss === null ? "" : lossColour(loss);
          spans[j].classList.toggle("first", loss === null && D.known[j] === "1");
        }
        legend(0, D.uniform, lossColour, "nats of surprise");
      }
      root.classList.toggle("by-loss", state.by !== "unit");
      var buttons = $("colourby").querySelectorAll("button");
      for (var b = 0; b < buttons.length; b++)
        buttons[b].classList.toggle("on", buttons[b].dataset.by === state.by);
      var items = $("found").querySelectorAll("button");
      for (var f = 0; f < items.length; f++) {
        var finding = D.findings[+items[f].dataset.k];
        var same = state.by === "unit" && finding.series === state.series &&
          finding.unit === unitId(s, state.col);
        items[f].classList.toggle("on", same);
      }
    }
    function legend(lo, hi, colour, name) {
      var stops = [];
      for (var k = 0; k <= 10; k++) stops.push(colour(lo + (hi - lo) * k / 10));
      $("legendbar").style.background = "linear-gradient(to right, " + stops.join(", ") + ")";
      $("legendlo").textContent = fmt(lo);
      $("legendhi").textContent = fmt(hi);
      $("legendname").textContent = name;
    }
    function fmt(x) { return Math.abs(x) >= 100 ? x.toFixed(0) : (+x.toPrecision(3)).toString(); }

    function syncPicker() {
      var s = series[state.series];
      if (!s) return;
      select.value = state.series;
      var range = $("unit");
      range.max = s.cols - 1; range.value = state.col;
      $("unitlabel").textContent = "unit " + unitId(s, state.col) + "/" + s.total;
    }
    function pick(seriesIndex, col, by) {
      state.series = seriesIndex; state.col = col;
      if (by) state.by = by;
      syncPicker(); paint();
      inspect(state.pinned >= 0 ? state.pinned : state.shownAt);
    }
    select.addEventListener("change", function () {
      var s = series[+select.value], old = series[state.series];
      var unit = unitId(old, state.col), col = colOf(s, unit);
      pick(+select.value, col >= 0 ? col : 0, "unit");
    });
    $("unit").addEventListener("input", function () {
      pick(state.series, +$("unit").value, "unit");
    });
    function step(delta) {
      var s = series[state.series]; if (!s) return;
      pick(state.series, (state.col + delta + s.cols) % s.cols, "unit");
    }
    $("prev").addEventListener("click", function () { step(-1); });
    $("next").addEventListener("click", function () { step(1); });
    $("colourby").addEventListener("click", function (event) {
      var by = event.target.dataset && event.target.dataset.by;
      if (by && !event.target.disabled) { state.by = by; paint(); }
    });

    // --- summary ---------------------------------------------------------------------------
    var unknown = 0;
    for (var u = 0; u < N; u++) if (D.known[u] !== "1") unknown += 1;
    var summary = $("summary");
    if (D.meanLoss !== null) {
      summary.appendChild(document.createTextNode("Mean surprise "));
      summary.appendChild(el("b", "", D.meanLoss.toFixed(3) + " nats/char"));
      summary.appendChild(document.createTextNode(" (" + (D.meanLoss / Math.LN2).toFixed(3) +
        " bits) over " + D.scored.toLocaleString("en") + " predicted characters"));
    } else {
      summary.appendChild(document.createTextNode("No character could be scored"));
    }
    var notes = [];
    if (unknown) notes.push(unknown + " character" + (unknown === 1 ? "" : "s") +
      " outside the model's vocabulary (struck through, grey: not scored)");
    var unscored = N - D.scored - unknown;
    if (unscored > 0 && lines) {
      notes.push(unscored + " more in names holding such a character (not read, as charrnn " +
        "eval leaves those names out)");
    } else if (unscored > 0) {
      notes.push(unscored + " with nothing before " + (unscored === 1 ? "it" : "them") +
        " to predict from (uncoloured)");
    }
    summary.appendChild(document.createTextNode(notes.length ? "; " + notes.join("; ") : ""));
    summary.appendChild(document.createTextNode("."));

    // --- the inspector ---------------------------------------------------------------------
    var canvas = $("strip"), ctx = canvas.getContext("2d");
    function inspect(i) {
      if (i < 0 || i >= N) { drawStrip(-1); return; }
      state.shownAt = i;
      var ch = chars[i];
      $("bigchar").textContent = ch === " " ? "\u2423" : shown(ch);
      var pos = where[i];
      var place = lines ?
        "name " + (pos[0] + 1) + ", " + (ch === "\n" ? "its end" : "letter " + (pos[1] + 1)) :
        "line " + (pos[0] + 1) + ", column " + (pos[1] + 1);
      $("where").textContent = describe(ch) + " \u00b7 " + place + " \u00b7 #" + i;
      var lossline = $("lossline"); lossline.textContent = "";
      var loss = D.loss[i];
      if (D.known[i] !== "1" && lines) {
        lossline.textContent = "Outside the model's vocabulary: it could not guess this " +
          "character, so the model did not read this name (charrnn eval leaves it out too).";
      } else if (D.known[i] !== "1") {
        lossline.textContent = "Outside the model's vocabulary: it could not guess this " +
          "character, and it did not read it (its state starts afresh after it).";
      } else if (loss === null && lines) {
        lossline.textContent = "This name holds a character outside the vocabulary, so the " +
          "model did not read it (charrnn eval leaves such names out too).";
      } else if (loss === null) {
        lossline.textContent = "The model starts afresh here (the start of the text, or just " +
          "after a character outside its vocabulary): nothing predicted this character.";
      } else {
        lossline.appendChild(document.createTextNode("Surprise "));
        lossline.appendChild(el("b", "", loss.toFixed(2) + " nats"));
        lossline.appendChild(document.createTextNode(": the model gave it p = " +
          pct(Math.exp(-loss)) + "."));
      }
      var list = $("guesses"); list.textContent = "";
      var any = false;
      for (var k = 0; k < K; k++) {
        var id = D.topIds[i * K + k];
        if (id < 0) continue;
        any = true;
        var p = D.topProbs[i * K + k], guess = D.vocab[id];
        var li = el("li", guess === ch ? "hit" : "");
        li.appendChild(el("span", "g", guess === " " ? "\u2423" : shown(guess)));
        var bar = el("span", "pbar"), fill = el("i");
        fill.style.width = (100 * p).toFixed(1) + "%"; bar.appendChild(fill); li.appendChild(bar);
        li.appendChild(el("span", "p", pct(p)));
        li.title = describe(guess);
        list.appendChild(li);
      }
      $("guesstitle").textContent = any ? "The model's top " + K + " guesses for it" :
        "The model's top guesses for it";
      if (!any) list.appendChild(el("li", "hint", "none: the model made no prediction here"));
      drawStrip(i);
    }
    function pct(p) {
      if (p < 0.001) return "<0.1%";
      return (100 * p).toFixed(p < 0.1 ? 1 : 0) + "%";
    }
    function drawStrip(i) {
      var s = series[state.series], ratio = window.devicePixelRatio || 1;
      var width = canvas.clientWidth || 356, height = canvas.clientHeight || 64;
      canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, width, height);
      var note = $("stripnote");
      if (!s) { note.textContent = "No unit activations were embedded."; return; }
      // a fixed range (tanh, gates) is shared; otherwise each unit on its own largest value,
      // as the text is coloured
      var fixedScale = s.fixed ? Math.max(Math.abs(s.fixed[0]), Math.abs(s.fixed[1])) : 0;
      var positive = s.fixed ? s.fixed[0] >= 0 : false;
      var base = positive ? height - 2 : height / 2, reach = positive ? height - 4 : height / 2 - 2;
      ctx.fillStyle = "#d8dee4"; ctx.fillRect(0, Math.round(base), width, 1);
      var w = width / s.cols;
      if (i >= 0) {
        for (var c = 0; c < s.cols; c++) {
          var v = value(s, i, c);
          if (isNaN(v)) continue;
          var scale = fixedScale || Math.max(Math.abs(s.lo[c]), Math.abs(s.hi[c]), 1e-9);
          var bar = Math.max(-1, Math.min(1, v / scale)) * reach;
          ctx.fillStyle = c === state.col ? "#1f2328" : (v < 0 ? "#4a8fd9" : "#e0683f");
          var gap = w > 3 ? 1 : 0;
          ctx.fillRect(c * w + gap / 2, bar < 0 ? base : base - bar, Math.max(w - gap, 0.6),
                       Math.abs(bar));
        }
      }
      ctx.fillStyle = "rgba(9, 105, 218, 0.18)";
      ctx.fillRect(state.col * w, 0, Math.max(w, 2), height);
      var text = s.name + ": " + s.cols + (s.units ? " of " + s.total : "") + " units" +
        (s.fixed ? "" : ", each on its own range");
      if (i >= 0) {
        var v0 = value(s, i, state.col);
        text += "; unit " + unitId(s, state.col) + " = " + (isNaN(v0) ? "\u2013" : v0.toFixed(3));
      }
      note.textContent = text + ". Click a bar to colour the text by its unit.";
    }
    canvas.addEventListener("click", function (event) {
      var s = series[state.series]; if (!s) return;
      var rect = canvas.getBoundingClientRect();
      var col = Math.floor((event.clientX - rect.left) / rect.width * s.cols);
      pick(state.series, Math.max(0, Math.min(s.cols - 1, col)), "unit");
    });
    function pin(i) {
      if (state.pinned >= 0) spans[state.pinned].classList.remove("pinned");
      state.pinned = i;
      if (i >= 0) spans[i].classList.add("pinned");
      inspect(i);
    }
    box.addEventListener("mouseover", function (event) {
      var i = event.target.dataset ? event.target.dataset.i : undefined;
      if (i !== undefined && state.pinned < 0) inspect(+i);
    });
    box.addEventListener("click", function (event) {
      var i = event.target.dataset ? event.target.dataset.i : undefined;
      if (i === undefined) return;
      pin(+i === state.pinned ? -1 : +i);
      if (state.pinned < 0) inspect(+i);
    });
    document.addEventListener("keydown", function (event) {
      var tag = event.target.tagName;
      if (state.pinned < 0 || tag === "INPUT" || tag === "SELECT") return;
      var to = event.key === "ArrowRight" ? state.pinned + 1 :
        event.key === "ArrowLeft" ? state.pinned - 1 : -2;
      if (to >= 0 && to < N) { pin(to); event.preventDefault(); }
      if (event.key === "Escape") pin(-1);
    });

    // --- units worth a look ----------------------------------------------------------------
    var found = $("found");
    $("foundhint").textContent = D.findings.length ?
      "The units whose activation follows a feature of this text most closely. Click one." :
      "No unit follows any of the features tried (|r| below 0.2).";
    D.findings.forEach(function (finding, k) {
      var s = series[finding.series];
      var button = el("button"); button.type = "button"; button.dataset.k = k;
      button.appendChild(el("span", "u", s.name + " \u00b7 unit " + finding.unit));
      var sign = finding.r > 0 ? "+" : "\u2212";
      button.appendChild(el("span", "r", "r " + sign + Math.abs(finding.r).toFixed(2)));
      button.appendChild(el("span", "f", finding.r > 0 ? "tracks " + finding.feature :
        "tracks " + finding.feature + ", inverted (low where it holds)"));
      button.addEventListener("click", function () {
        pick(finding.series, colOf(s, finding.unit), "unit");
      });
      var li = el("li"); li.appendChild(button); found.appendChild(li);
    });
    if (D.left.length) {
      $("leftnote").textContent = "Left out to keep the page small (a shorter --length keeps " +
        "them): " + D.left.join(", ") + ". Their units above stay available.";
    }

    // --- start, and the hooks tests and links use -------------------------------------------
    var params = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) return;
      var eq = part.indexOf("=");
      params[decodeURIComponent(eq < 0 ? part : part.slice(0, eq))] =
        eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1));
    });
    if (D.findings.length) {
      var top = D.findings[0];
      state.series = top.series; state.col = Math.max(colOf(series[top.series], top.unit), 0);
    }
    syncPicker(); paint();
    if (params.unit !== undefined) {  // #unit=layer 0 h:17
      var cut = params.unit.lastIndexOf(":");
      var name = params.unit.slice(0, cut), wanted = +params.unit.slice(cut + 1);
      series.forEach(function (s, k) {
        if (s.name === name && colOf(s, wanted) >= 0) pick(k, colOf(s, wanted), "unit");
      });
    }
    if (params.char !== undefined && +params.char >= 0 && +params.char < N) pin(+params.char);
    else {
      var first = -1;
      for (var c = 0; c < N && first < 0; c++) if (D.loss[c] !== null) first = c;
      inspect(first);
    }
    if (params.selftest !== undefined) selfTest();
    root.setAttribute("data-viz-ms", String(Math.round(performance.now())));
    root.setAttribute("data-viz-status", "ok");

    function selfTest() {  // click the first unit worth a look, as a reader would
      var before = spans.map(function (s) { return s.style.backgroundColor; });
      var button = found.querySelector("button");
      var result = ["findings=" + D.findings.length];
      if (button) {
        button.click();
        var changed = 0;
        for (var i = 0; i < N; i++) if (spans[i].style.backgroundColor !== before[i]) changed += 1;
        var s = series[state.series];
        result.push("clicked=" + s.name + ":" + unitId(s, state.col), "by=" + state.by,
          "changed=" + changed, "active=" + found.querySelectorAll("button.on").length);
      }
      var target = -1;
      for (var j = 0; j < N && target < 0; j++) if (D.loss[j] !== null) target = j;
      if (target >= 0) {
        spans[target].dispatchEvent(new MouseEvent("click", { bubbles: true }));
        result.push("pinned=" + state.pinned, "guesses=" + $("guesses").children.length);
      }
      root.setAttribute("data-viz-selftest", result.join(";"));
    }
  }
})();
