// inrkit report: synchronised zoom of image panes and a canvas mesh viewer. No network, no library.
"use strict";

(function () {
  // ---- synchronised zoom: every pane of a .zoom-group shows the same scale and offset -------------------------
  function setupZoomGroup(group) {
    var state = { scale: 1, x: 0, y: 0 };
    var images = Array.prototype.slice.call(group.querySelectorAll(".zoom-view img"));
    function apply() {
      images.forEach(function (img) {
        img.style.transform = "translate(" + state.x + "px," + state.y + "px) scale(" + state.scale + ")";
      });
    }
    // a pane takes its image's aspect ratio, its longer side kept at the stylesheet's size (no letterbox bars)
    images.forEach(function (img) {
      function fit() {
        var view = img.parentNode, side = view.clientWidth;
        if (!img.naturalWidth || !img.naturalHeight) { return; }
        if (img.naturalWidth >= img.naturalHeight) {
          view.style.height = Math.round(side * img.naturalHeight / img.naturalWidth) + "px";
        } else {
          view.style.width = Math.round(side * img.naturalWidth / img.naturalHeight) + "px";
        }
      }
      if (img.complete) { fit(); } else { img.addEventListener("load", fit); }
    });
    var drag = null;
    Array.prototype.forEach.call(group.querySelectorAll(".zoom-view"), function (view) {
      view.addEventListener("wheel", function (event) {
        event.preventDefault();
        var rect = view.getBoundingClientRect();
        var px = event.clientX - rect.left, py = event.clientY - rect.top;
        var factor = event.deltaY < 0 ? 1.25 : 0.8;
        var scale = Math.min(64, Math.max(1, state.scale * factor));
        factor = scale / state.scale;
        state.x = px - (px - state.x) * factor;
        state.y = py - (py - state.y) * factor;
        state.scale = scale;
        if (scale === 1) { state.x = 0; state.y = 0; }
        apply();
      }, { passive: false });
      view.addEventListener("mousedown", function (event) {
        drag = { x: event.clientX - state.x, y: event.clientY - state.y };
        event.preventDefault();
      });
      view.addEventListener("dblclick", function () { state = { scale: 1, x: 0, y: 0 }; apply(); });
    });
    window.addEventListener("mousemove", function (event) {
      if (!drag) { return; }
      state.x = event.clientX - drag.x;
      state.y = event.clientY - drag.y;
      apply();
    });
    window.addEventListener("mouseup", function () { drag = null; });
    apply();
  }

  // ---- mesh viewer: flat-shaded triangles, painter's algorithm on a 2-D canvas ---------------------------------
  function decode(base64, Type) {
    var bytes = atob(base64), buffer = new ArrayBuffer(bytes.length), view = new Uint8Array(buffer);
    for (var i = 0; i < bytes.length; i++) { view[i] = bytes.charCodeAt(i); }
    return new Type(buffer);
  }

  function setupMesh(figure) {
    var canvas = figure.querySelector("canvas");
    var data = JSON.parse(figure.querySelector(".mesh-data").textContent);
    var v = decode(data.vertices, Float32Array), f = decode(data.faces, Uint32Array);
    var n = v.length / 3, m = f.length / 3;
    // centre and scale into the unit sphere
    var lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (var i = 0; i < n; i++) {
      for (var k = 0; k < 3; k++) { lo[k] = Math.min(lo[k], v[3 * i + k]); hi[k] = Math.max(hi[k], v[3 * i + k]); }
    }
    var centre = [0, 1, 2].map(function (k) { return (lo[k] + hi[k]) / 2; });
    var radius = Math.max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / 2 || 1;
    var view = { yaw: 0.6, pitch: -0.35, zoom: 1 };
    var ctx = canvas.getContext("2d");
    var projected = new Float32Array(3 * n), order = new Uint32Array(m), depth = new Float32Array(m);

    function draw() {
      var w = canvas.width, h = canvas.height, s = 0.45 * Math.min(w, h) * view.zoom / radius;
      var cy = Math.cos(view.yaw), sy = Math.sin(view.yaw), cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
      for (var i = 0; i < n; i++) {
        var x = v[3 * i] - centre[0], y = v[3 * i + 1] - centre[1], z = v[3 * i + 2] - centre[2];
        var x1 = cy * x + sy * z, z1 = -sy * x + cy * z;          // yaw about the y axis
        var y2 = cp * y - sp * z1, z2 = sp * y + cp * z1;          // pitch about the x axis
        projected[3 * i] = w / 2 + s * x1;
        projected[3 * i + 1] = h / 2 - s * y2;
        projected[3 * i + 2] = z2;
      }
      for (var j = 0; j < m; j++) {
        order[j] = j;
        depth[j] = projected[3 * f[3 * j] + 2] + projected[3 * f[3 * j + 1] + 2] + projected[3 * f[3 * j + 2] + 2];
      }
      var sorted = Array.prototype.slice.call(order).sort(function (a, b) { return depth[a] - depth[b]; });
      ctx.fillStyle = "#f4f4f4";
      ctx.fillRect(0, 0, w, h);
      for (var t = 0; t < m; t++) {
        var face = sorted[t], a = 3 * f[3 * face], b = 3 * f[3 * face + 1], c = 3 * f[3 * face + 2];
        var ux = projected[b] - projected[a], uy = projected[b + 1] - projected[a + 1], uz = projected[b + 2] - projected[a + 2];
        var vx = projected[c] - projected[a], vy = projected[c + 1] - projected[a + 1], vz = projected[c + 2] - projected[a + 2];
        // normal in screen space (y down): light from the viewer, both sides lit
        var nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
        var length = Math.sqrt(nx * nx + ny * ny + nz * nz) || 1;
        var shade = Math.round(60 + 180 * Math.abs(nz / length));
        ctx.fillStyle = "rgb(" + shade + "," + Math.round(shade * 0.92) + "," + Math.round(shade * 0.8) + ")";
        ctx.beginPath();
        ctx.moveTo(projected[a], projected[a + 1]);
        ctx.lineTo(projected[b], projected[b + 1]);
        ctx.lineTo(projected[c], projected[c + 1]);
        ctx.closePath();
        ctx.fill();
      }
      canvas.setAttribute("data-drawn-faces", String(m));
    }

    var drag = null;
    canvas.addEventListener("mousedown", function (event) { drag = { x: event.clientX, y: event.clientY }; });
    window.addEventListener("mouseup", function () { drag = null; });
    window.addEventListener("mousemove", function (event) {
      if (!drag) { return; }
      view.yaw += 0.01 * (event.clientX - drag.x);
      view.pitch = Math.max(-1.5, Math.min(1.5, view.pitch + 0.01 * (event.clientY - drag.y)));
      drag = { x: event.clientX, y: event.clientY };
      draw();
    });
    canvas.addEventListener("wheel", function (event) {
      event.preventDefault();
      view.zoom = Math.max(0.2, Math.min(20, view.zoom * (event.deltaY < 0 ? 1.15 : 0.87)));
      draw();
    }, { passive: false });
    draw();
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll(".zoom-group"), setupZoomGroup);
    Array.prototype.forEach.call(document.querySelectorAll(".mesh-view"), setupMesh);
    document.body.setAttribute("data-report-ready", "1");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
