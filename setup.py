from setuptools import find_packages, setup

setup(
    name="oqron",
    version="0.1.0",
    description="A prefork job framework for synchronous Python: never loses a job, fails over in seconds.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["oqron", "oqron.*"]),
    package_data={"oqron.adapters.redis": ["scripts/*.lua"], "oqron": ["py.typed"]},
    install_requires=[
        "redis[hiredis]>=5.0,<9",  # the job path reads private connection attributes (packed.py)
        "psycopg2-binary>=2.9",
        "croniter>=2.0",
        "click>=8.1",
        "setproctitle>=1.3",
        "orjson>=3.9",
    ],
    entry_points={
        "console_scripts": [
            "oqron-master=oqron.cli:master_main",
            "oqron=oqron.cli:admin_main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
    ],
)
