"""Prints the models README's figures table from a training-report.json.

    python3 -m models.training.report_table /tmp/bundles/training-report.json
"""
import json
import sys


def fmt_params(n):
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.0f} K"


def quality(sample):
    return f"{sample['score']:.2f} (exact {sample['exact']:.2f}, n={sample['n']})"


def main(path):
    report = json.load(open(path))
    models = report["models"]
    rows = ["| model | params | steps × batch | train s | final loss | quality, held-out prompts | quality, train prompts |",
            "|---|---|---|---|---|---|---|"]
    ae = models["autoencoder"]
    rows.append(f"| autoencoder | {fmt_params(ae['params'])} | {ae['steps']} × {ae['batch']} | {ae['train_seconds']:.0f} | "
                f"rec {ae['final_rec_loss']:.2g} | PSNR {ae['psnr_heldout_db']:.1f} dB | PSNR {ae['psnr_train_db']:.1f} dB |")
    for name in ["tiny-sd", "tiny-sd-large", "tiny-flux", "tiny-video"]:
        if name not in models:
            continue
        m = models[name]
        rows.append(f"| {name} | {fmt_params(m['params'])} + {fmt_params(m['text_encoder_params'])} text | {m['steps']} × {m['batch']} | "
                    f"{m['train_seconds']:.0f} | {m['final_loss']:.3g} | composition {quality(m['samples_heldout'])} | {quality(m['samples_train_prompts'])} |")
    for name in ["reward-image-guidance", "reward-image-held-out", "reward-video-guidance", "reward-video-held-out"]:
        if name not in models:
            continue
        m = models[name]
        r = m["retrieval_heldout"]
        of = next((k for k in r if k.startswith("top1_of_")), None)
        rows.append(f"| {name} | {fmt_params(m['params'])} | {m['steps']} × {m['batch']} | {m['train_seconds']:.0f} | {m['final_loss']:.3g} | "
                    f"retrieval: hard-negative top-1 {r['hard_negative_top1']:.2f}" + (f", {of.replace('_', ' ')} {r[of]:.2f}" if of else "") + " | |")
    print("\n".join(rows))
    print()
    sizes = ", ".join(f"{name} {b['bytes'] / 1e6:.1f} MB" for name, b in report["bundles"].items())
    print(f"Bundles: {sizes}; {report['total_bundle_bytes'] / 1e6:.1f} MB together. Training took {report['total_seconds'] / 60:.1f} min "
          f"on {report['device_name']} (torch {report['torch']}), scale `{report['scale']}`, seed {report['seed']}; "
          f"data: {report['data']['train_images']} training images ({report['data']['unique_train_image_prompts']} distinct prompts), "
          f"{report['data']['train_videos']} training videos.")


if __name__ == "__main__":
    main(sys.argv[1])
