"""Scoring open-ended answers with a judge model reached through any OpenAI-compatible endpoint
(`POST {url}/chat/completions`), with the official judge prompts (tasks/eval/vcgbench and
tasks/eval/videoqabench, gpt-3.5-turbo-0125 in the paper's runs).

- VCG: generic_qa gets three scores (context, detailed_orientation, correctness), temporal_qa one
  (temporal), consistency_qa one (consistency, both answers in one prompt, the questions in the official
  run's swapped order); a score above 3 counts as right.
- VideoQA (ActivityNet-QA, MSVD, MSRVTT, TGIF, a plain JSONL): {'pred': 'yes'|'no', 'score': n}.
- The reply is read as a Python dict literal (ast.literal_eval), as the official script does; a reply it
  cannot read scores 0 (and not right), as there, and the row says so.

Knows HTTP (urllib) and the prompts; no model, rows file or command line.
"""

from __future__ import annotations

import ast
import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from ..errors import InputError

_INTRO = "You are an intelligent chatbot designed for evaluating the {what} of generative outputs for video-based question-answer pairs. "
_ASK = ("Please evaluate the following video-based question-answer pair:\n\n"
        "Question: {question}\nCorrect Answer: {answer}\nPredicted Answer: {pred}\n\n")
_DICT = ("Please generate the response in the form of a Python dictionary string with keys 'score', where its value is "
         "the {score} in INTEGER, not STRING."
         "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary string. "
         "For example, your response should look like this: {{'score': 4.8}}.")


def _vcg(what: str, task: str, instructions: str, score_text: str, score_name: str, dict_score: str) -> dict:
    return {
        "system": _INTRO.format(what=what) + task + "------" + "##INSTRUCTIONS: " + instructions,
        "user": _ASK + f"Provide your evaluation only as a {score_text} where the {score_text} is an integer value "
                       f"between 0 and 5, with 5 indicating the highest level of {score_name}. "
                + _DICT.replace("{score}", dict_score),
    }


VCG_PROMPTS = {
    "temporal": _vcg(
        "temporal understanding",
        "Your task is to compare the predicted answer with the correct answer and determine if they correctly reflect the temporal sequence of events in the video content. Here's how you can accomplish the task:",
        "- Focus on the temporal consistency between the predicted answer and the correct answer. The predicted answer should correctly reflect the sequence of events or details as they are presented in the video content.\n"
        "- Consider synonyms or paraphrases as valid matches, but only if the temporal order is maintained.\n"
        "- Evaluate the temporal accuracy of the prediction compared to the answer.",
        "temporal accuracy score", "temporal consistency", "temporal accuracy score"),
    "context": _vcg(
        "contextual understanding",
        "Your task is to compare the predicted answer with the correct answer and determine if the generated response aligns with the overall context of the video content. Here's how you can accomplish the task:",
        "- Evaluate whether the predicted answer aligns with the overall context of the video content. It should not provide information that is out of context or misaligned.\n"
        "- The predicted answer must capture the main themes and sentiments of the video.\n"
        "- Consider synonyms or paraphrases as valid matches.\n"
        "- Provide your evaluation of the contextual understanding of the prediction compared to the answer.",
        "contextual understanding score", "contextual understanding", "contextual understanding score"),
    "detailed_orientation": _vcg(
        "detail orientation",
        "Your task is to compare the predicted answer with the correct answer and determine its level of detail, considering both completeness and specificity. Here's how you can accomplish the task:",
        "- Check if the predicted answer covers all major points from the video. The response should not leave out any key aspects.\n"
        "- Evaluate whether the predicted answer includes specific details rather than just generic points. It should provide comprehensive information that is tied to specific elements of the video.\n"
        "- Consider synonyms or paraphrases as valid matches.\n"
        "- Provide a single evaluation score that reflects the level of detail orientation of the prediction, considering both completeness and specificity.",
        "detail orientation score", "detail orientation", "detail orientation score"),
    "correctness": _vcg(
        "factual accuracy",
        "Your task is to compare the predicted answer with the correct answer and determine if they are factually consistent. Here's how you can accomplish the task:",
        "- Focus on the factual consistency between the predicted answer and the correct answer. The predicted answer should not contain any misinterpretations or misinformation.\n"
        "- The predicted answer must be factually accurate and align with the video content.\n"
        "- Consider synonyms or paraphrases as valid matches.\n"
        "- Evaluate the factual accuracy of the prediction compared to the answer.",
        "factual accuracy score", "factual consistency", "factual accuracy score"),
}
# the official context prompt alone says "its value is contextual understanding score" (no "the"): kept
VCG_PROMPTS["context"]["user"] = VCG_PROMPTS["context"]["user"].replace(
    "its value is the contextual understanding score", "its value is contextual understanding score")
VCG_PROMPTS["consistency"] = {
    "system": "You are an intelligent chatbot designed for evaluating the consistency of generative outputs for similar video-based question-answer pairs. "
              "You will be given two very similar questions, a common answer common to both the questions and predicted answers for the two questions ."
              "Your task is to compare the predicted answers for two very similar question, with a common correct answer and determine if they are consistent. Here's how you can accomplish the task:"
              "------"
              "##INSTRUCTIONS: "
              "- Focus on the consistency between the two predicted answers and the correct answer. Both predicted answers should correspond to the correct answer and to each other, and should not contain any contradictions or significant differences in the conveyed information.\n"
              "- Both predicted answers must be consistent with each other and the correct answer, in terms of the information they provide about the video content.\n"
              "- Consider synonyms or paraphrases as valid matches, but only if they maintain the consistency in the conveyed information.\n"
              "- Evaluate the consistency of the two predicted answers compared to the correct answer.",
    "user": "Please evaluate the following video-based question-answer pair:\n\n"
            "Question 1: {question}\nQuestion 2: {question1}\nCorrect Answer: {answer}\n"
            "Predicted Answer to Question 1: {pred}\nPredicted Answer to Question 2: {pred1}\n\n"
            "Provide your evaluation only as a consistency score where the consistency score is an integer value between 0 and 5, with 5 indicating the highest level of consistency. "
            + _DICT.replace("{score}", "consistency score"),
}
QA_PROMPT = {
    "system": "You are an intelligent chatbot designed for evaluating the correctness of generative outputs for question-answer pairs. "
              "Your task is to compare the predicted answer with the correct answer and determine if they match meaningfully. Here's how you can accomplish the task:"
              "------"
              "##INSTRUCTIONS: "
              "- Focus on the meaningful match between the predicted answer and the correct answer.\n"
              "- Consider synonyms or paraphrases as valid matches.\n"
              "- Evaluate the correctness of the prediction compared to the answer.",
    "user": _ASK + "Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5, with 5 indicating the highest meaningful match. "
            "Please generate the response in the form of a Python dictionary string with keys 'pred' and 'score', where value of 'pred' is  a string of 'yes' or 'no' and value of 'score' is in INTEGER, not STRING."
            "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary string. "
            "For example, your response should look like this: {{'pred': 'yes', 'score': 4.8}}.",
}
VCG_SUBTASKS = {"generic_qa": ("context", "detailed_orientation", "correctness"), "temporal_qa": ("temporal",),
                "consistency_qa": ("consistency",)}


@dataclass(frozen=True)
class Judge:
    url: str  # base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1
    model: str = "gpt-3.5-turbo-0125"
    api_key: str | None = None
    timeout: float = 60.0

    def __post_init__(self):
        if not self.url.startswith(("http://", "https://")):
            raise InputError(f"--judge-url must start with http:// or https://, got {self.url!r}.")

    def chat(self, system: str, user: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "system", "content": system},
                                                              {"role": "user", "content": user}]}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url.rstrip("/") + "/chat/completions", body, headers)
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - a URL the user gave
            return json.loads(resp.read())["choices"][0]["message"]["content"]

    def score_row(self, row: dict) -> dict:
        """{"scores": {name: score}, "correct": bool, "unreadable": [names]} for an open-ended row."""
        q, preds, answer = row["questions"], row["preds"], row["answer"]
        scores, unreadable, right = {}, [], []
        if row["task"] in VCG_SUBTASKS:
            for sub in VCG_SUBTASKS[row["task"]]:
                fields = {"question": q[0], "answer": answer, "pred": preds[0]}
                if sub == "consistency":  # the official run swaps the questions before recording them, so its
                    # judge reads "Question 1: Q2, Question 2: Q1" beside the answers to Q1 and Q2 (kept: same numbers)
                    fields.update(question=q[1], question1=q[0], pred1=preds[1])
                if any(not p for p in preds):  # official: an empty answer scores 0 without asking
                    scores[sub] = 0
                    continue
                reply = self._ask(VCG_PROMPTS[sub], fields)
                score = reply.get("score") if isinstance(reply, dict) else None
                if not isinstance(score, (int, float)):
                    unreadable.append(sub)
                    score = 0
                scores[sub] = score
                right.append(score > 3)
            return {"model": self.model, "scores": scores, "correct": all(right) and bool(right), "unreadable": unreadable}
        reply = self._ask(QA_PROMPT, {"question": q[0], "answer": answer, "pred": preds[0]})
        ok = isinstance(reply, dict) and reply.get("pred") in ("yes", "no") and isinstance(reply.get("score"), (int, float))
        return {"model": self.model, "scores": {"score": reply["score"] if ok else 0},
                "correct": ok and reply["pred"] == "yes", "unreadable": [] if ok else ["score"]}

    def _ask(self, prompt: dict, fields: dict):
        try:
            text = self.chat(prompt["system"], prompt["user"].format(**fields))
        except (urllib.error.URLError, OSError, KeyError, IndexError, ValueError) as e:
            raise InputError(f"The judge at {self.url} did not answer: {e}") from None
        try:
            return ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
