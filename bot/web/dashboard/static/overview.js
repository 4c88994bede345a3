// The overview's charts: one small uPlot chart per number, this period (solid) over the previous one (dotted),
// day for day. The numbers come from the page's JSON block (#overview-data); nothing is fetched.
"use strict";
(function () {
  var source = document.getElementById("overview-data");
  if (!source || typeof uPlot === "undefined") return;
  var data = JSON.parse(source.textContent);
  var dates = data.dates;
  var xs = dates.map(function (_, i) { return i; });
  var charts = [];

  function monthDay(iso) {  // "2026-03-05" -> "3/5", the same in Japanese and English
    var parts = iso.split("-");
    return Number(parts[1]) + "/" + Number(parts[2]);
  }

  function format(kind, value) {
    if (value == null) return "—";
    if (kind === "ratio") return value.toFixed(3);
    if (kind === "days") return value.toFixed(1);
    if (kind === "yen") return "¥" + Math.round(value).toLocaleString();
    return Math.round(value).toLocaleString();
  }

  // y-axis steps for whole numbers (counts, points, yen): never a tick at 0.5
  var WHOLE = [];
  for (var e = 1; e <= 1e9; e *= 10) WHOLE.push(e, 2 * e, 5 * e);

  function tick(kind, v) {
    if (kind === "ratio") return String(Math.round(v * 1000) / 1000);
    if (kind === "days") return String(Math.round(v * 10) / 10);
    return (kind === "yen" ? "¥" : "") + Math.round(v).toLocaleString();
  }

  function size(el) {
    return { width: Math.max(200, el.clientWidth), height: 150 };
  }

  // the funnel's bars: their widths from data-share (set here: the page allows no inline styles)
  document.querySelectorAll(".funnel-bar[data-share]").forEach(function (bar) {
    bar.style.width = Math.max(0.5, Number(bar.getAttribute("data-share")) * 100) + "%";
  });

  document.querySelectorAll(".chart[data-metric]").forEach(function (el) {
    var series = data.series[el.getAttribute("data-metric")];
    if (!series) return;
    var kind = series.kind;
    var opts = Object.assign(size(el), {
      legend: { show: true, live: false },
      cursor: { points: { size: 6 } },
      scales: { x: { time: false }, y: { range: function (u, min, max) { return [0, Math.max(max || 0, kind === "ratio" ? 0.01 : 1)]; } } },
      axes: [
        { values: function (u, splits) { return splits.map(function (i) { return Number.isInteger(i) && dates[i] ? monthDay(dates[i]) : ""; }); },
          incrs: [1, 2, 7, 14, 28], space: 40, size: 28, font: "11px system-ui, sans-serif" },
        { values: function (u, splits) { return splits.map(function (v) { return tick(kind, v); }); },
          incrs: kind === "ratio" || kind === "days" ? undefined : WHOLE, size: 52, font: "11px system-ui, sans-serif" }
      ],
      series: [
        { label: "", value: function (u, i) { return i == null || dates[i] == null ? "" : monthDay(dates[i]) + " / " + monthDay(data.previous_dates[i]); } },
        { label: data.labels.current, stroke: "#06c755", width: 2, fill: "rgba(6,199,85,.08)", spanGaps: kind === "days",
          value: function (u, v) { return format(kind, v); } },
        { label: data.labels.previous, stroke: "#8a96a3", width: 1.5, dash: [5, 4], spanGaps: kind === "days",
          value: function (u, v) { return format(kind, v); } }
      ]
    });
    // the day under the pointer, both periods' values, in the chart's caption
    var caption = document.querySelector('.hover-value[data-for="' + el.getAttribute("data-metric") + '"]');
    opts.hooks = { setCursor: [function (u) {
      var i = u.cursor.idx;
      if (!caption) return;
      caption.textContent = i == null ? "" : monthDay(dates[i]) + " " + format(kind, series.current[i]) + " · " +
        monthDay(data.previous_dates[i]) + " " + format(kind, series.previous[i]);
    }] };
    el.textContent = "";
    charts.push([el, new uPlot(opts, [xs, series.current, series.previous], el)]);
  });

  var pending = null;
  window.addEventListener("resize", function () {  // the phone turned, the window resized: redraw to fit
    if (pending) clearTimeout(pending);
    pending = setTimeout(function () {
      charts.forEach(function (pair) { pair[1].setSize(size(pair[0])); });
    }, 150);
  });
  document.documentElement.setAttribute("data-charts", String(charts.length));
})();
