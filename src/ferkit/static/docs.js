// The API docs page (/docs): Swagger UI on this server's /openapi.json. A file rather than an
// inline script, so the Content-Security-Policy can forbid inline scripts.
"use strict";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null,  // Swagger UI would otherwise send the spec to an outside validator
});
