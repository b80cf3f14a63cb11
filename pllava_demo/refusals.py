"""The sentences a person reads when a request to a tab is refused, each typed once. The studio
(studio/tab.py) checks its commands with them, and the chat engine says the same words when a library
caller skips the studio; the page, the named API, the CLI and the OpenAI door show them as they are.

Plain strings at the bottom of the package: knows no studio, engine or door.
"""

NO_VIDEO = "Upload a video (or pick an example) before asking."
NOTHING_TO_REGENERATE = "There is no answer to regenerate yet."
STILL_ANSWERING = "Still answering your previous question: wait for the answer, or press Stop."
COMPARE_NEEDS_A_QUESTION = "Ask a question first: Compare re-asks the last one with other settings."
COMPARE_KEEPS_FRAMES = "Compare keeps the frame count; change the strategy, pooling or alpha instead."
NO_FILE = "Choose a video or image first."
NO_CHAT_TO_DOWNLOAD = "There is no chat to download yet."
