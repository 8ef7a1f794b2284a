// Swagger UI's settings for /docs, in a file rather than inline so that the Content-Security-Policy allows
// scripts from this origin only. No validator badge: it would send the spec to an outside service.
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
