/* The report's charts, drawn with TradingView Lightweight Charts (inlined before this script).
 * Each chart is a div.chart followed by a JSON script element of class chart-data whose
 * data-for names the div; storage/report_pages.py wrote the data. Times are epoch seconds,
 * shown in UTC. A chart that cannot be drawn keeps its note; the page stays as it is. */
(function () {
  "use strict";
  var L = window.LightweightCharts;
  var C = {
    up: "#26a69a", down: "#ef5350", buy: "#15803d", sell: "#b91c1c", exit: "#7c3aed", fill: "#6b7280",
    base: "#2563eb", other: "#ea580c", gain: "#16a34a", loss: "#dc2626",
    grid: "#eef0f3", border: "#e5e7eb", text: "#4b5563", start: "#64748b", dots: "#94a3b8"
  };
  var formats = {};

  function num(v, places) {
    if (typeof v !== "number" || !isFinite(v)) return "\u2014";
    var f = formats[places] || (formats[places] = new Intl.NumberFormat("en-US", {
      minimumFractionDigits: places, maximumFractionDigits: places }));
    return f.format(v);
  }
  function signed(v, places) {
    var s = num(v, places);
    return v > 0 && s !== num(0, places) ? "+" + s : s.replace(/^-/, "\u2212");
  }
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function utc(t, seconds) {
    var d = new Date(t * 1000);
    var s = d.getUTCFullYear() + "-" + two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) +
      " " + two(d.getUTCHours()) + ":" + two(d.getUTCMinutes());
    return seconds ? s + ":" + two(d.getUTCSeconds()) : s;
  }

  function options(el, spec, top) {
    return {
      autoSize: true,
      layout: {
        background: { type: "solid", color: "#ffffff" }, textColor: C.text, fontSize: 11,
        fontFamily: window.getComputedStyle(el).fontFamily, attributionLogo: true
      },
      grid: { vertLines: { color: C.grid }, horzLines: { color: C.grid } },
      /* room at the top for the readout (one line per curve, and the time) */
      rightPriceScale: { borderColor: C.border, scaleMargins: { top: top, bottom: 0.08 } },
      /* a margin right of the last point, so the last time label is not cut by the price scale */
      timeScale: { borderColor: C.border, timeVisible: true, secondsVisible: false,
                   rightOffsetPixels: 28 },
      crosshair: { mode: L.CrosshairMode.Normal },
      localization: {
        locale: "en-US",
        timeFormatter: function (t) { return utc(t) + " UTC"; },
        priceFormatter: function (p) { return num(p, spec.precision); }
      }
    };
  }
  function priceFormat(spec) {
    return { type: "price", precision: spec.precision, minMove: Math.pow(10, -spec.precision) };
  }

  /* The line under the crosshair (or, away from the chart, the latest one): a few text lines,
   * each [text, class]. textContent only: the data never becomes markup. */
  function tipBox(el) {
    var box = document.createElement("div");
    box.className = "chart-tip";
    el.appendChild(box);
    return function (lines) {
      box.textContent = "";
      lines.forEach(function (line) {
        var div = document.createElement("div");
        div.textContent = line[0];
        if (line[1]) div.className = line[1];
        box.appendChild(div);
      });
      box.style.display = lines.length ? "" : "none";
    };
  }

  function markerOf(f, placement) {
    var sell = f.side === "SELL", buy = f.side === "BUY";
    /* one run: entries green (buy) or red (sell), exits violet; two runs: a colour per run */
    var color = f.run ? C[f.run] || C.fill : f.role === "exit" ? C.exit : sell ? C.sell : buy ? C.buy : C.fill;
    var m = { time: f.t, color: color, text: f.text || "",
              shape: sell ? "arrowDown" : buy ? "arrowUp" : "circle" };
    if (placement === "price") {
      m.position = sell ? "atPriceTop" : buy ? "atPriceBottom" : "atPriceMiddle";
      m.price = f.px;
    } else {
      m.position = sell ? "aboveBar" : "belowBar";
    }
    return m;
  }

  function drawPrice(el, spec) {
    var chart = L.createChart(el, options(el, spec, 0.1));
    var series, last = null;
    if (spec.bars.length) {
      series = chart.addSeries(L.CandlestickSeries, {
        upColor: C.up, downColor: C.down, wickUpColor: C.up, wickDownColor: C.down,
        borderVisible: false, priceFormat: priceFormat(spec) });
      series.setData(spec.bars.map(function (b) {
        if (b.length < 5) return { time: b[0] };
        last = { time: b[0], open: b[1], high: b[2], low: b[3], close: b[4] };
        return last;
      }));
    } else {
      series = chart.addSeries(L.LineSeries, {
        color: C.dots, lineVisible: false, pointMarkersVisible: true, pointMarkersRadius: 2,
        lastValueVisible: false, priceLineVisible: false, priceFormat: priceFormat(spec) });
      series.setData(spec.line.map(function (p) { return { time: p[0], value: p[1] }; }));
      if (spec.line.length) {
        var p = spec.line[spec.line.length - 1];
        last = { time: p[0], value: p[1] };
      }
    }
    /* A marker is drawn on a bar that has data: a fill in a minute without a candle (the
     * end-of-session flatten after the last closed one) goes on an invisible series that has
     * a point at that minute, so it shows at its own time, not on the nearest candle. */
    var free = spec.fills.filter(function (f) { return f.free; });
    var holder = null;
    if (free.length) {
      holder = chart.addSeries(L.LineSeries, {
        lineVisible: false, pointMarkersVisible: false, crosshairMarkerVisible: false,
        lastValueVisible: false, priceLineVisible: false, priceFormat: priceFormat(spec) });
      var at = {};
      free.forEach(function (f) { at[f.t] = f.px; });
      holder.setData(Object.keys(at).map(Number).sort(function (a, b) { return a - b; })
        .map(function (t) { return { time: t, value: at[t] }; }));
    }
    var groups = [[series, spec.fills.filter(function (f) { return !f.free; })], [holder, free]]
      .filter(function (g) { return g[0] && g[1].length; })
      .map(function (g) {
        var full = g[1].map(function (f) { return markerOf(f, spec.placement); });
        var bare = full.map(function (m) { var c = Object.assign({}, m); c.text = ""; return c; });
        return { full: full, bare: bare, plugin: L.createSeriesMarkers(g[0], full) };
      });
    var full = [].concat.apply([], groups.map(function (g) { return g.full; }));
    var withText = true;
    /* marker labels only while they have room: about 44 px of chart per visible marker */
    function relabel() {
      var range = chart.timeScale().getVisibleRange();
      if (!range) return;
      var shown = 0;
      full.forEach(function (m) { if (m.time >= range.from && m.time <= range.to) shown += 1; });
      var want = shown * 44 <= chart.timeScale().width();
      if (want !== withText) {
        withText = want;
        groups.forEach(function (g) { g.plugin.setMarkers(want ? g.full : g.bare); });
      }
    }
    chart.timeScale().subscribeVisibleTimeRangeChange(relabel);

    var byTime = {};
    spec.fills.forEach(function (f) { (byTime[f.t] = byTime[f.t] || []).push(f); });
    var show = tipBox(el);
    function describe(time, bar) {
      var lines = [];
      if (bar && bar.open !== undefined) {
        lines.push([utc(time) + " UTC   O " + num(bar.open, spec.precision) +
                    "  H " + num(bar.high, spec.precision) + "  L " + num(bar.low, spec.precision) +
                    "  C " + num(bar.close, spec.precision), bar.close >= bar.open ? "up" : "down"]);
      } else if (time !== undefined) {
        lines.push([utc(time) + " UTC", "t"]);
      }
      var here = byTime[time] || [];
      here.slice(0, 4).forEach(function (f) { lines.push([f.tip, f.run]); });
      if (here.length > 4) lines.push(["and " + (here.length - 4) + " more fills", "t"]);
      show(lines);
    }
    chart.subscribeCrosshairMove(function (param) {
      if (param.time === undefined) describe(last && last.time, last);
      else describe(param.time, param.seriesData.get(series));
    });
    describe(last && last.time, last);
    chart.timeScale().fitContent();
    el.dataset.bars = String(spec.bars.filter(function (b) { return b.length >= 5; }).length);
    el.dataset.markers = String(full.length);
    return chart;
  }

  function drawEquity(el, spec) {
    var chart = L.createChart(el, options(el, spec, spec.series.length > 1 ? 0.3 : 0.22));
    var curves = spec.series.map(function (s, i) {
      var data = s.points.map(function (p) { return { time: p[0], value: p[1] }; });
      var series;
      if (spec.series.length === 1) {
        series = chart.addSeries(L.BaselineSeries, {
          baseValue: { type: "price", price: spec.start }, lineWidth: 2,
          topLineColor: C.gain, topFillColor1: "rgba(22,163,74,.20)", topFillColor2: "rgba(22,163,74,.03)",
          bottomLineColor: C.loss, bottomFillColor1: "rgba(220,38,38,.03)", bottomFillColor2: "rgba(220,38,38,.18)",
          pointMarkersVisible: data.length < 3, priceFormat: priceFormat(spec) });
      } else {
        /* the second curve dashed: where the two coincide both stay visible */
        series = chart.addSeries(L.LineSeries, {
          color: C[s.run] || C.fill, lineWidth: 2,
          lineStyle: i > 0 ? L.LineStyle.Dashed : L.LineStyle.Solid,
          pointMarkersVisible: data.length < 3, priceFormat: priceFormat(spec) });
      }
      series.setData(data);
      if (i === 0) {
        series.createPriceLine({ price: spec.start, color: C.start, lineWidth: 1,
                                 lineStyle: L.LineStyle.Dashed, axisLabelVisible: true,
                                 title: "start" });
      }
      return { spec: s, series: series, last: data[data.length - 1] };
    });
    var show = tipBox(el);
    function describe(time, values) {
      var lines = [];
      if (time !== undefined) lines.push([utc(time, true) + " UTC", "t"]);
      curves.forEach(function (c, i) {
        var v = values[i];
        if (v === undefined) return;
        lines.push([(curves.length > 1 ? c.spec.label + "  " : "equity  ") + num(v, spec.precision) +
                    "  (" + signed(v - spec.start, spec.precision) + ")",
                    curves.length > 1 ? c.spec.run : v >= spec.start ? "up" : "down"]);
      });
      show(lines);
    }
    function latest() {
      var t;
      curves.forEach(function (c) { if (c.last && (t === undefined || c.last.time > t)) t = c.last.time; });
      describe(t, curves.map(function (c) { return c.last && c.last.value; }));
    }
    chart.subscribeCrosshairMove(function (param) {
      if (param.time === undefined) { latest(); return; }
      describe(param.time, curves.map(function (c) {
        var d = param.seriesData.get(c.series);
        return d && d.value;
      }));
    });
    latest();
    chart.timeScale().fitContent();
    el.dataset.points = String(spec.series.reduce(function (n, s) { return n + s.points.length; }, 0));
    return chart;
  }

  var draw = { price: drawPrice, equity: drawEquity };
  var nodes = document.querySelectorAll("script.chart-data");
  var drawn = 0;
  Array.prototype.forEach.call(nodes, function (node) {
    var el = document.getElementById(node.getAttribute("data-for"));
    if (!el) return;
    var note = el.querySelector(".chart-fallback");
    if (!L) {
      if (note) note.textContent = "The chart library is missing from this page, so the chart cannot be drawn; the figures and tables are complete.";
      return;
    }
    try {
      var spec = JSON.parse(node.textContent);
      el.classList.add("live");
      var chart = draw[spec.kind](el, spec);
      var fit = document.querySelector('button.chart-fit[data-for="' + el.id + '"]');
      if (fit) {
        fit.hidden = false;
        fit.addEventListener("click", function () { chart.timeScale().fitContent(); });
      }
      el.dataset.drawn = "1";
      drawn += 1;
    } catch (e) {
      el.classList.remove("live");
      if (note) note.textContent = "The chart could not be drawn (" + (e && e.message || e) + "); the figures and tables are complete.";
    }
  });
  document.body.dataset.charts = String(drawn);
})();
