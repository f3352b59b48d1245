/**
 * The provider builds this project knows byte for byte, and the system libraries they load. An archive
 * is installed without further proof only when every file it gives matches one of these builds: a
 * provider library is native code loaded into every worker, so "some libonnxruntime_providers_cuda.so"
 * is not good enough.
 */

/** The provider libraries onnxruntime-node looks for next to libonnxruntime.so.1. */
export const SHARED_LIBRARY = 'libonnxruntime_providers_shared.so';
export const CUDA_LIBRARY = 'libonnxruntime_providers_cuda.so';
export const TENSORRT_LIBRARY = 'libonnxruntime_providers_tensorrt.so';
export type ProviderFileName = typeof SHARED_LIBRARY | typeof CUDA_LIBRARY | typeof TENSORRT_LIBRARY;

/**
 * The order files go into place: the bridge library first, the CUDA library last, so that the CUDA
 * library being there means the rest of its set is too (onnxruntime loads it through the bridge).
 */
export const INSTALL_ORDER: readonly ProviderFileName[] = [SHARED_LIBRARY, TENSORRT_LIBRARY, CUDA_LIBRARY];

export interface PinnedFile {
  readonly size: number;
  readonly sha256: string;
}

/** A system library a provider needs, and how a user gets it. */
export interface SystemLibrary {
  /** The name the dynamic loader looks for. */
  readonly soname: string;
  /** What it is, in the words of NVIDIA's downloads. */
  readonly what: string;
  /** How to get it onto this machine. */
  readonly fix: string;
  /**
   * 'load': a NEEDED entry, the provider does not load without it; 'run': opened with dlopen by the
   * provider when a session starts; 'optional': opened only by some operators (the provider works without it).
   */
  readonly when: 'load' | 'run' | 'optional';
}

export interface NpmSource {
  readonly name: string;
  readonly version: string;
  /** npm's integrity of the tarball (sha512, base64), as the registry publishes it. */
  readonly integrity: string;
  readonly size: number;
  readonly tarball: string;
  readonly license: string;
}

export interface KnownBuild {
  /** Recorded in the manifest; names onnxruntime version, CUDA major and platform. */
  readonly id: string;
  readonly onnxruntimeVersion: string;
  readonly cudaMajor: number;
  readonly cudnnMajor: number;
  readonly platform: 'linux-x64';
  readonly files: Readonly<Record<ProviderFileName, PinnedFile>>;
  /** What each provider library needs from the machine (readelf -d, plus the libraries it dlopens). */
  readonly needs: Readonly<Record<typeof CUDA_LIBRARY | typeof TENSORRT_LIBRARY, readonly SystemLibrary[]>>;
  /** Where the files come from by default: `npm pack` of this package. */
  readonly npm: NpmSource;
}

const cuda13 = {
  driver: { soname: 'libcuda.so.1', what: 'the NVIDIA driver', fix: 'install an NVIDIA driver new enough for CUDA 13 (580 or later); it comes with the driver, not the toolkit', when: 'load' },
  cudart: { soname: 'libcudart.so.13', what: "CUDA 13's runtime (cudart)", fix: "install CUDA 13's runtime (apt package cuda-cudart-13-0, or the CUDA Toolkit 13 from developer.nvidia.com/cuda-downloads) and put its lib folder on LD_LIBRARY_PATH", when: 'load' },
  cublas: { soname: 'libcublas.so.13', what: "CUDA 13's cuBLAS", fix: "install CUDA 13's cuBLAS (apt package libcublas-13-0, or the CUDA Toolkit 13 from developer.nvidia.com/cuda-downloads) and put its lib folder on LD_LIBRARY_PATH", when: 'load' },
  cublasLt: { soname: 'libcublasLt.so.13', what: "CUDA 13's cuBLASLt, part of cuBLAS", fix: "install CUDA 13's cuBLAS (apt package libcublas-13-0, or the CUDA Toolkit 13 from developer.nvidia.com/cuda-downloads) and put its lib folder on LD_LIBRARY_PATH", when: 'load' },
  curand: { soname: 'libcurand.so.10', what: "CUDA 13's cuRAND", fix: "install CUDA 13's cuRAND (apt package libcurand-13-0, or the CUDA Toolkit 13 from developer.nvidia.com/cuda-downloads) and put its lib folder on LD_LIBRARY_PATH", when: 'load' },
  cudnn: { soname: 'libcudnn.so.9', what: 'cuDNN 9 for CUDA 13', fix: 'install cuDNN 9 for CUDA 13 (apt package libcudnn9-cuda-13, or developer.nvidia.com/cudnn) and put its lib folder on LD_LIBRARY_PATH', when: 'run' },
  cufft: { soname: 'libcufft.so.12', what: "CUDA 13's cuFFT, used only by FFT operators", fix: "install CUDA 13's cuFFT (apt package libcufft-13-0, or the CUDA Toolkit 13 from developer.nvidia.com/cuda-downloads) and put its lib folder on LD_LIBRARY_PATH", when: 'optional' },
  nvinfer: { soname: 'libnvinfer.so.10', what: 'TensorRT 10', fix: 'install TensorRT 10 for CUDA 13 (developer.nvidia.com/tensorrt) and put its lib folder on LD_LIBRARY_PATH', when: 'load' },
  nvonnxparser: { soname: 'libnvonnxparser.so.10', what: "TensorRT 10's ONNX parser", fix: 'install TensorRT 10 for CUDA 13 (developer.nvidia.com/tensorrt) and put its lib folder on LD_LIBRARY_PATH', when: 'load' },
} as const satisfies Record<string, SystemLibrary>;

export const KNOWN_BUILDS: readonly KnownBuild[] = [
  {
    id: 'onnxruntime-1.29.0-cuda13-linux-x64',
    onnxruntimeVersion: '1.29.0',
    cudaMajor: 13,
    cudnnMajor: 9,
    platform: 'linux-x64',
    files: {
      [SHARED_LIBRARY]: { size: 14_632, sha256: 'c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772' },
      [CUDA_LIBRARY]: { size: 229_780_440, sha256: '56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037' },
      [TENSORRT_LIBRARY]: { size: 859_144, sha256: 'ef6071798a339038ad66c428fb1a809cf8e499bffc3b6870e4e8bc4f4c6a6320' },
    },
    // NEEDED entries of the 1.29.0 files (readelf -d), less glibc and libstdc++; cuDNN and cuFFT are
    // not NEEDED: the provider dlopens them (its strings hold "libcudnn.so" + major and "libcufft.so.12").
    needs: {
      [CUDA_LIBRARY]: [cuda13.driver, cuda13.cudart, cuda13.cublas, cuda13.cublasLt, cuda13.curand, cuda13.cudnn, cuda13.cufft],
      [TENSORRT_LIBRARY]: [cuda13.cudart, cuda13.cublas, cuda13.cudnn, cuda13.nvinfer, cuda13.nvonnxparser],
    },
    npm: {
      name: 'com.github.asus4.onnxruntime.linux-x64-gpu',
      version: '0.4.9',
      integrity: 'sha512-FopIhNE/Ng+v2X65wVc9clPCBCvhvA53Hxo2U0Kf5fGdVsC7iCA+mZ0KLWggcQAj7TIZ6pNidR4AC10g74Xo6w==',
      size: 179_145_956,
      tarball: 'https://registry.npmjs.org/com.github.asus4.onnxruntime.linux-x64-gpu/-/com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz',
      license: 'MIT',
    },
  },
];

/** The build installed when nothing else is asked for: the one for the onnxruntime-node this project pins. */
export const DEFAULT_BUILD: KnownBuild = KNOWN_BUILDS[0]!;

/**
 * Libraries every Linux process has (glibc, libstdc++): never worth reporting, and named in the NEEDED
 * entries of any provider build read from its ELF header.
 */
export const BASE_SYSTEM_LIBRARIES: ReadonlySet<string> = new Set(['libc.so.6', 'libm.so.6', 'libdl.so.2', 'librt.so.1', 'libpthread.so.0', 'libstdc++.so.6', 'libgcc_s.so.1', 'ld-linux-x86-64.so.2']);

/** What a library is and how to get it, for the libraries the known builds name (null: unknown to us). */
export function describeSystemLibrary(soname: string): SystemLibrary | null {
  for (const build of KNOWN_BUILDS) {
    for (const list of Object.values(build.needs)) {
      const found = list.find((lib) => lib.soname === soname);
      if (found) return found;
    }
  }
  return null;
}
