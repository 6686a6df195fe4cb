#!/usr/bin/env python3
"""DPO, SFT, reward-model, GRPO, RLOO or PPO training with Hugging Face TRL on the job folder `dpo export-job --engine trl` wrote.

Launch with accelerate (see README.md):

    accelerate launch --config_file accelerate/single_gpu.yaml train.py [--output-dir DIR] [--resume]

Uses TRL's public API only: DPOConfig, DPOTrainer, SFTConfig, SFTTrainer, RewardConfig, RewardTrainer, GRPOConfig,
GRPOTrainer, RLOOConfig, RLOOTrainer, trl.experimental.ppo's PPOConfig and PPOTrainer (DPOTrainer's public
compute_ref_log_probs overridden to use the job's reference log-probs when it has them), the documented
DataCollatorForPreference, and datasets / transformers / peft loaders. Reward functions are the job's Python
functions (rewards.py) or reward-model directories, as job.json lists them.
The result (model or PEFT adapter, trainer_state.json, checkpoints) goes to the output directory,
with a copy of job.json as dpo_ts_job.json, so `dpo import-run DIR` can bring it back.
"""

import argparse
import json
import os
import shutil

import yaml
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
from trl import (
    DPOConfig,
    DPOTrainer,
    GRPOConfig,
    GRPOTrainer,
    RewardConfig,
    RewardTrainer,
    RLOOConfig,
    RLOOTrainer,
    SFTConfig,
    SFTTrainer,
)
from trl.trainer.dpo_trainer import DataCollatorForPreference

HERE = os.path.dirname(os.path.abspath(__file__))

# The job's reference log-probs (job.json "ref_logps": written by dpo-ts only when TRL provably tokenizes every
# pair as dpo-ts does) arrive as the columns ref_chosen_logps / ref_rejected_logps. TRL's precompute pass adds
# columns of those names itself, so they are renamed on loading, carried into each batch by the collator, and
# returned by compute_ref_log_probs instead of a reference forward pass; TRL then caches and uses them as its own.
JOB_REF_COLUMNS = {"ref_chosen_logps": "job_ref_chosen_logps", "ref_rejected_logps": "job_ref_rejected_logps"}


class CollatorWithJobReference(DataCollatorForPreference):
    """TRL's preference collator; batches of rows that carry the job's reference log-probs get them too."""

    def torch_call(self, examples):
        import torch

        batch = super().torch_call(examples)
        if "ref_chosen_logps" not in batch and "job_ref_chosen_logps" in examples[0]:
            for ours, theirs in JOB_REF_COLUMNS.items():
                batch[ours] = torch.tensor([example[theirs] for example in examples], dtype=torch.float32)
        return batch


class DPOTrainerWithJobReference(DPOTrainer):
    """DPOTrainer whose reference log-probs come from the job's columns when a batch carries them."""

    def compute_ref_log_probs(self, model, inputs):
        if "ref_chosen_logps" in inputs:
            return inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        return super().compute_ref_log_probs(model, inputs)


def job_path(rel):
    return rel if os.path.isabs(rel) else os.path.join(HERE, rel)


def reward_funcs(job):
    """The job's reward functions: Python functions of its modules, or reward-model directories (paths)."""
    import importlib.util

    funcs = []
    for spec in job.get("reward_funcs", []):
        if spec["kind"] == "python":
            path = job_path(spec["module"])
            module_spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            funcs.append(getattr(module, spec["function"]))
        elif spec["kind"] == "model":
            funcs.append(job_path(spec["path"]))
        else:
            raise ValueError(f"job.json: unknown reward function kind {spec['kind']!r}")
    return funcs


def run_ppo(job, config_kwargs, model, tokenizer, dataset, peft_config):
    """TRL's experimental PPOTrainer: policy, frozen reference, reward model, value model; prompts as input_ids."""
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    training_args = PPOConfig(**config_kwargs)
    model_kwargs = getattr(training_args, "model_init_kwargs", None) or {}
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    reward_model = AutoModelForSequenceClassification.from_pretrained(job_path(job["reward_model"]), num_labels=1, **model_kwargs)
    value = job["value_model"]
    value_model = AutoModelForSequenceClassification.from_pretrained(
        model if value["path"] == "model" else job_path(value["path"]), num_labels=1, **model_kwargs
    )
    policy = AutoModelForCausalLM.from_pretrained(model, **model_kwargs)
    ref_policy = AutoModelForCausalLM.from_pretrained(model, **model_kwargs)
    # The prompts as dpo-ts tokenized them (chat template and max_prompt_length applied).
    train_dataset = dataset["train"].select_columns(["input_ids"])
    trainer = PPOTrainer(
        args=training_args,
        processing_class=tokenizer,
        model=policy,
        ref_model=ref_policy,
        reward_model=reward_model,
        value_model=value_model,
        train_dataset=train_dataset,
        peft_config=peft_config,
    )
    return trainer, training_args


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", help="where the trained model goes (default: dpo_config.yaml's output_dir)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output directory")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (a smoke test of the job before the GPUs)")
    args = parser.parse_args()

    with open(job_path("job.json"), encoding="utf-8") as f:
        job = json.load(f)
    with open(job_path(job["config_file"]), encoding="utf-8") as f:
        config_kwargs = yaml.safe_load(f)
    config_kwargs["output_dir"] = args.output_dir or job_path(config_kwargs.get("output_dir", "output"))
    if args.cpu:
        config_kwargs["use_cpu"] = True
    kind = job["trainer"]
    sft = kind == "sft"
    model = job["model"]["ref"] if job["model"]["hub"] else job_path(job["model"]["ref"])
    tokenizer = AutoTokenizer.from_pretrained(model)

    data_files = {"train": job_path(job["data"]["train"])}
    if job["data"]["eval"]:
        data_files["eval"] = job_path(job["data"]["eval"])
    # JSON Lines ("json") or Parquet ("parquet"), as `dpo export-job --data-format` wrote them.
    dataset = load_dataset(job["data"].get("loader", "json"), data_files=data_files)

    peft_config = None
    if job.get("peft_config_file"):
        from peft import LoraConfig

        with open(job_path(job["peft_config_file"]), encoding="utf-8") as f:
            peft_config = LoraConfig(**json.load(f))

    if kind in ("reward", "grpo", "rloo", "ppo"):
        common = dict(
            model=model,
            train_dataset=dataset["train"],
            eval_dataset=dataset["eval"] if "eval" in dataset else None,
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        if kind == "reward":
            training_args = RewardConfig(**config_kwargs)
            trainer = RewardTrainer(args=training_args, **common)
        elif kind == "ppo":
            trainer, training_args = run_ppo(job, config_kwargs, model, tokenizer, dataset, peft_config)
        else:
            training_args = (GRPOConfig if kind == "grpo" else RLOOConfig)(**config_kwargs)
            trainer_class = GRPOTrainer if kind == "grpo" else RLOOTrainer
            trainer = trainer_class(reward_funcs=reward_funcs(job), args=training_args, **common)
        finish(job, trainer, training_args, tokenizer, args)
        return

    training_args = (SFTConfig if sft else DPOConfig)(**config_kwargs)
    trainer_class, data_collator = DPOTrainer, None
    if job.get("ref_logps"):
        if not training_args.precompute_ref_log_probs:
            raise ValueError("job.json has ref_logps but dpo_config.yaml turns precompute_ref_log_probs off")
        dataset = dataset.rename_columns(JOB_REF_COLUMNS)
        # The pad token as DPOTrainer chooses it when it builds its own collator.
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        data_collator = CollatorWithJobReference(
            pad_token_id=tokenizer.pad_token_id,
            max_length=training_args.max_length,
            truncation_mode=training_args.truncation_mode,
            pad_to_multiple_of=training_args.pad_to_multiple_of,
        )
        trainer_class = DPOTrainerWithJobReference

    ref_model = None
    if job.get("ref_model"):
        ref_model = AutoModelForCausalLM.from_pretrained(
            job_path(job["ref_model"]["ref"]), **(training_args.model_init_kwargs or {})
        )

    common = dict(
        model=model,
        args=training_args,
        train_dataset=dataset["train"],
        eval_dataset=dataset["eval"] if "eval" in dataset else None,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if sft:
        trainer = SFTTrainer(**common)
    else:
        trainer = trainer_class(ref_model=ref_model, data_collator=data_collator, **common)
    finish(job, trainer, training_args, tokenizer, args)


def finish(job, trainer, training_args, tokenizer, args):
    """Train, evaluate once more when dpo-ts would, save the model, the state and the job manifest."""
    if job["trainer"] == "ppo":
        if args.resume:
            raise SystemExit("--resume: TRL's PPOTrainer cannot resume from a checkpoint; start the job again")
        trainer.train()
    else:
        trainer.train(resume_from_checkpoint=True if args.resume else None)
    if job.get("final_evaluate"):
        trainer.evaluate()
    trainer.save_model(training_args.output_dir)
    trainer.save_state()
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(training_args.output_dir)
        shutil.copyfile(job_path("job.json"), os.path.join(training_args.output_dir, "dpo_ts_job.json"))


if __name__ == "__main__":
    main()
