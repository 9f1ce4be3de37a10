// Merged by @jupyter/builder into its rspack config (package.json: jupyterlab.webpackConfig).
// The default "deterministic" module ids hash the module federation container's identifier,
// which holds the absolute path of src/index.js: the bundle would then differ between checkouts.
// Ids in module order are the same wherever the repository lives, so the committed build is too.
module.exports = { optimization: { moduleIds: "natural" } };
