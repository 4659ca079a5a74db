from llmhost.cli import console

console()
