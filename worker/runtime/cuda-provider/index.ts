/**
 * Installing and checking onnxruntime's CUDA execution provider libraries, which the onnxruntime-node
 * npm package does not ship. The CLI's `evosearch install-cuda` and the session code use only this.
 */
export { installCudaProvider, type InstallOptions, type InstallResult } from './install-provider.js';
export { cudaProviderStatus, type CudaProviderStatus, type MissingLibrary, type ProviderFileStatus, type StatusOptions } from './provider-status.js';
export { explainCudaProviderLoadError, type ExplainOptions } from './explain-load-error.js';
export { CudaProviderError } from './errors.js';
export { assertLinuxX64, defaultProviderFolder } from './provider-folder.js';
export { describeSource } from './archive-source.js';
export { CUDA_LIBRARY, DEFAULT_BUILD, KNOWN_BUILDS, SHARED_LIBRARY, TENSORRT_LIBRARY, type KnownBuild } from './known-builds.js';
export { MANIFEST_FILE, type ProviderManifest } from './manifest.js';
