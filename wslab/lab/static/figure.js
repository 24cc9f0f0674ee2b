// The view of wslab's plotly figures (wslab.lab.figures.LabFigure), an anywidget module.
//
// The kernel keeps the whole figure in the model's state (_widget_data, _widget_layout,
// _config) and sends it again after each change, so every view draws the current figure:
// one made long after the cells ran (Voila, a reopened notebook's saved widget state, a
// second view) as much as one that watched every change. Plotly.react redraws in place.
//
// One plotly.js for the page: the first figure loads it with a <script> from the server
// that serves the page (wslab's handler, URL below, relative to the page's baseUrl); every
// other figure waits for that same promise. Nothing comes from the network.
//
// Widths: a figure without layout.width follows the width of the box it sits in (a
// ResizeObserver on its element), so it never runs past its box and grows with the page.

const PLOTLY_URL = "__WSLAB_PLOTLY_URL__";

function baseUrl() {
  const node = document.getElementById("jupyter-config-data");
  let base = "/";
  if (node) {
    try {
      base = JSON.parse(node.textContent || "{}").baseUrl || "/";
    } catch (_err) {
      base = "/";
    }
  }
  return new URL(base, window.location.href);
}

function loadPlotly() {
  if (!window.__wslabPlotly) {
    window.__wslabPlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = new URL(PLOTLY_URL, baseUrl()).href;
      script.async = true;
      script.onload = () => (window.Plotly ? resolve(window.Plotly)
        : reject(new Error("wslab: plotly.js loaded but did not define Plotly")));
      script.onerror = () => {
        window.__wslabPlotly = undefined; // let the next figure try again
        reject(new Error(`wslab: could not load plotly.js from ${script.src}`));
      };
      document.head.appendChild(script);
    });
  }
  return window.__wslabPlotly;
}

const ARRAYS = {
  int8: Int8Array, int16: Int16Array, int32: Int32Array,
  uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array,
  float32: Float32Array, float64: Float64Array,
};

function typedArray(spec) {
  const Ctor = ARRAYS[spec.dtype];
  const raw = spec.buffer !== undefined ? spec.buffer : spec.value;
  if (!Ctor || raw === undefined || raw === null) return raw;
  let bytes;
  if (raw instanceof ArrayBuffer) {
    bytes = raw.slice(0);
  } else if (ArrayBuffer.isView(raw)) {
    bytes = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
  } else {
    return raw;
  }
  return new Ctor(bytes);
}

// plotly.py's wire format -> plain plotly.js values: numeric numpy arrays arrive as
// {dtype, shape, buffer} (a binary buffer), undefined values as "_undefined_". Returns a
// fresh copy every time: plotly.js may write into what it is given.
function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value === "_undefined_") return undefined;
  if (value && typeof value === "object") {
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
    if ("dtype" in value && "shape" in value && ("buffer" in value || "value" in value)) {
      return typedArray(value);
    }
    const out = {};
    for (const key of Object.keys(value)) {
      const v = decode(value[key]);
      if (v !== undefined) out[key] = v;
    }
    return out;
  }
  return value;
}

function render({ model, el }) {
  el.classList.add("wslab-figure");
  el.style.width = "100%";
  el.style.minWidth = "0";
  el.style.boxSizing = "border-box";
  const gd = document.createElement("div");
  gd.className = "wslab-figure-plot";
  el.appendChild(gd);

  let alive = true;
  let queued = false;
  let chain = Promise.resolve();
  let followsBox = true;
  let lastWidth = 0;

  const draw = async () => {
    const Plotly = await loadPlotly();
    if (!alive) return;
    const layout = decode(model.get("_widget_layout")) || {};
    const data = decode(model.get("_widget_data")) || [];
    const config = { ...(decode(model.get("_config")) || {}), responsive: false };
    followsBox = layout.width === undefined || layout.width === null;
    if (followsBox) layout.autosize = true;
    if (!layout.height) layout.height = 360;
    await Plotly.react(gd, data, layout, config);
  };
  const schedule = () => {
    if (queued) return;
    queued = true;
    // One redraw for the changes of one message (data and layout arrive together).
    chain = chain.then(() => new Promise((resolve) => setTimeout(resolve, 0)))
      .then(() => { queued = false; return draw(); })
      .catch((err) => console.error(err));
  };
  model.on("change:_widget_data", schedule);
  model.on("change:_widget_layout", schedule);
  model.on("change:_config", schedule);
  schedule();

  const observer = new ResizeObserver((entries) => {
    const width = Math.round(entries[entries.length - 1].contentRect.width);
    if (!followsBox || width === 0 || width === lastWidth) return;
    lastWidth = width;
    chain = chain.then(async () => {
      if (alive && gd._fullLayout && window.Plotly) await window.Plotly.Plots.resize(gd);
    }).catch((err) => console.error(err));
  });
  observer.observe(el);

  return () => {
    alive = false;
    observer.disconnect();
    model.off("change:_widget_data", schedule);
    model.off("change:_widget_layout", schedule);
    model.off("change:_config", schedule);
    if (window.Plotly) window.Plotly.purge(gd);
  };
}

// A model is made while its cell still runs (the panel builds its figures before it
// computes): start fetching plotly.js then, so it is ready when the view is drawn.
function initialize() {
  loadPlotly().catch((err) => console.error(err));
}

export default { initialize, render };
