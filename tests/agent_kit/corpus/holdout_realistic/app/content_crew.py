"""A crew in CrewAI's project-template style (@CrewBase with YAML configs)."""

from app.tools.publish import PublishPostTool
from crewai import Agent, Crew, Process, Task
from crewai.project import CrewBase, agent, crew, task
from crewai_tools import FileWriterTool, SerperDevTool


@CrewBase
class ContentCrew:
    agents_config = "config/agents.yaml"
    tasks_config = "config/tasks.yaml"

    @agent
    def researcher(self) -> Agent:
        return Agent(config=self.agents_config["researcher"], tools=[SerperDevTool()])

    @agent
    def writer(self) -> Agent:
        return Agent(config=self.agents_config["writer"], tools=[FileWriterTool()])

    @agent
    def publisher(self) -> Agent:
        return Agent(config=self.agents_config["publisher"], tools=[PublishPostTool()])

    @task
    def research(self) -> Task:
        return Task(config=self.tasks_config["research"])

    @task
    def publish(self) -> Task:
        return Task(config=self.tasks_config["publish"], human_input=True)

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.sequential)
