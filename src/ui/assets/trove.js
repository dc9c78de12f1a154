// Trove web interface: progressive enhancements only (every page reads without them).
// Search-as-you-type, uploads with a progress bar per file, confirmations.
// Nothing is ever inserted as HTML: text goes in through textContent, and the search swap
// moves nodes parsed from this server's own escaped page.
(function () {
  "use strict";

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function encodePath(path) {
    return path.split("/").map(encodeURIComponent).join("/");
  }

  // ------------------------------------------------------------- search as you type
  function liveSearch() {
    var box = document.querySelector("[data-live-search]");
    if (!box || !window.fetch || !window.DOMParser) return;
    var form = box.form;
    var timer = null;
    var last = box.value;
    box.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        if (box.value === last) return;
        last = box.value;
        var url = form.action + "?" + new URLSearchParams(new FormData(form)).toString();
        fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
          .then(function (response) { return response.text(); })
          .then(function (text) {
            var doc = new DOMParser().parseFromString(text, "text/html");
            var fresh = doc.getElementById("search-results");
            var current = document.getElementById("search-results");
            if (fresh && current && box.value === last) {
              current.replaceWith(document.adoptNode(fresh));
              history.replaceState(null, "", url);
            }
          })
          .catch(function () { /* the form still works */ });
      }, 250);
    });
  }

  // ------------------------------------------------------------------------ uploads
  function hex(buffer) {
    return Array.prototype.map
      .call(new Uint8Array(buffer), function (b) { return ("0" + b.toString(16)).slice(-2); })
      .join("");
  }

  function sha256(file) {
    if (!window.crypto || !crypto.subtle) return Promise.resolve(null);
    return file.arrayBuffer().then(function (bytes) {
      return crypto.subtle.digest("SHA-256", bytes);
    }).then(hex);
  }

  function api(method, path, body) {
    return fetch("/ui/api" + path, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        if (!response.ok) throw new Error(json.reason || ("HTTP " + response.status));
        return json;
      });
    });
  }

  function putFile(project, version, file, row) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open("PUT", "/ui/api/projects/" + encodeURIComponent(project) + "/version/" +
        encodeURIComponent(version) + "/files/" + encodePath(file.name));
      xhr.setRequestHeader("X-CSRF-Token", csrf());
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) {
          row.bar.max = event.total;
          row.bar.value = event.loaded;
        }
      });
      xhr.onload = function () {
        var json = {};
        try { json = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300) resolve(json);
        else reject(new Error(json.reason || ("HTTP " + xhr.status)));
      };
      xhr.onerror = function () { reject(new Error("network error")); };
      xhr.send(file);
    });
  }

  function uploads() {
    var form = document.getElementById("upload-form");
    if (!form) return;
    var input = document.getElementById("files");
    var zone = document.getElementById("dropzone");
    var list = document.getElementById("file-list");
    var status = document.getElementById("upload-status");
    var chosen = [];

    function show() {
      list.textContent = "";
      chosen.forEach(function (file) {
        var item = document.createElement("li");
        var label = document.createElement("span");
        label.textContent = file.name + " (" + file.size + " bytes) ";
        var state = document.createElement("span");
        state.className = "state";
        state.textContent = "waiting";
        var bar = document.createElement("progress");
        bar.max = Math.max(file.size, 1);
        bar.value = 0;
        bar.setAttribute("aria-label", "Upload of " + file.name);
        item.appendChild(label);
        item.appendChild(state);
        item.appendChild(bar);
        list.appendChild(item);
        file.row = { item: item, bar: bar, state: state };
      });
    }
    function add(files) {
      Array.prototype.forEach.call(files, function (file) { chosen.push(file); });
      show();
    }
    input.addEventListener("change", function () { chosen = []; add(input.files); });
    zone.addEventListener("dragover", function (event) { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("over");
      add(event.dataTransfer.files);
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var project = form.getAttribute("data-project");
      var version = form.version.value.trim();
      if (!chosen.length) { status.textContent = "Choose at least one file."; return; }
      var button = document.getElementById("upload-submit");
      button.disabled = true;
      status.textContent = "Creating version " + version + "…";
      var base = "/projects/" + encodeURIComponent(project) + "/version" + "/" + encodeURIComponent(version);
      api("POST", "/projects/" + encodeURIComponent(project) + "/versions",
        { version: version, changelog: form.changelog.value })
        .then(function () {
          // One file after another: each bar moves on its own.
          return chosen.reduce(function (previous, file) {
            return previous.then(function () {
              file.row.state.textContent = "uploading";
              return Promise.all([putFile(project, version, file, file.row), sha256(file)])
                .then(function (results) {
                  var stored = results[0], local = results[1];
                  if (local && stored.sha256 && stored.sha256 !== local) {
                    throw new Error(file.name + ": checksum mismatch");
                  }
                  file.row.bar.value = file.row.bar.max;
                  file.row.state.textContent = local ? "done, sha256 verified" : "done";
                  file.row.item.className = "state-done";
                });
            });
          }, Promise.resolve());
        })
        .then(function () {
          status.textContent = "Completing the version…";
          return api("PUT", base + "/complete");
        })
        .then(function (job) { return waitJob(job.path); })
        .then(function () {
          status.textContent = "";
          var link = document.createElement("a");
          link.href = form.getAttribute("data-project-url") + "/versions/" + encodeURIComponent(version);
          link.id = "upload-done";
          link.textContent = "Version " + version + " is complete and searchable: open it";
          status.appendChild(link);
        })
        .catch(function (error) {
          status.textContent = "Upload failed: " + error.message;
          status.className = "alert";
          button.disabled = false;
        });
    });
  }

  function waitJob(path) {
    return new Promise(function (resolve, reject) {
      var tries = 0;
      (function poll() {
        api("GET", path).then(function (job) {
          if (job.status === "SUCCESS") return resolve(job);
          if (job.status === "FAILURE") return reject(new Error(job.error || "indexing failed"));
          if (++tries > 300) return reject(new Error("indexing takes too long"));
          setTimeout(poll, 100);
        }, reject);
      })();
    });
  }

  // ------------------------------------------------------------------ confirmations
  function confirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    liveSearch();
    uploads();
    confirmations();
  });
})();
