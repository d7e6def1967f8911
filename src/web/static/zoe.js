// Zoe's web interface: small helps on top of pages that work without JavaScript.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // Ask before destructive actions.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });

  // New execution: fill the description box from a file or from the catalogue.
  var box = document.getElementById("description");
  var name = document.getElementById("name");
  document.querySelectorAll(".js-only").forEach(function (el) {
    el.hidden = false;
  });
  var file = document.getElementById("description-file");
  if (file && box) {
    file.addEventListener("change", function () {
      var f = file.files && file.files[0];
      if (!f) {
        return;
      }
      var reader = new FileReader();
      reader.onload = function () {
        box.value = String(reader.result);
        var app = document.getElementById("app");
        if (app) {
          app.value = "";
        }
      };
      reader.readAsText(f);
    });
  }
  var app = document.getElementById("app");
  if (app && box) {
    app.addEventListener("change", function () {
      var option = app.options[app.selectedIndex];
      var json = option && option.getAttribute("data-json");
      if (json) {
        box.value = json;
        if (name && !name.value) {
          name.value = option.getAttribute("data-name") || "";
        }
      }
    });
  }

  // Workspace: upload with a progress bar. The same form is sent as without JavaScript
  // (multipart, to the same address); the page it leads to is then shown.
  var upload = document.getElementById("upload");
  var bar = document.getElementById("upload-progress");
  var said = document.getElementById("upload-status");
  if (upload && bar && said && window.FormData && window.XMLHttpRequest) {
    upload.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = document.getElementById("upload-button");
      var xhr = new XMLHttpRequest();
      xhr.open("POST", upload.action);
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable && e.total > 0) {
          bar.max = e.total;
          bar.value = e.loaded;
          said.textContent = Math.floor((100 * e.loaded) / e.total) + " % sent";
        }
      });
      xhr.addEventListener("load", function () {
        if (xhr.status < 400 && xhr.responseURL) {
          window.location.assign(xhr.responseURL);
          return;
        }
        // A refusal is an error page: its message is shown here.
        var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
        var message = page.querySelector(".notice-page p:not(.status-code)");
        said.textContent = "Not uploaded (HTTP " + xhr.status + "): " + (message ? message.textContent : xhr.statusText);
        said.className = "upload-error";
        if (button) {
          button.disabled = false;
        }
      });
      xhr.addEventListener("error", function () {
        said.textContent = "Not uploaded: the connection was lost.";
        said.className = "upload-error";
        if (button) {
          button.disabled = false;
        }
      });
      if (button) {
        button.disabled = true;
      }
      said.textContent = "Sending...";
      said.className = "";
      xhr.send(new FormData(upload));
    });
  }

  // Logs: show the newest lines.
  var log = document.getElementById("log");
  if (log) {
    log.scrollTop = log.scrollHeight;
  }
});
