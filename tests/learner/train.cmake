# Trainer tests (learner/train: ibrl-train, ibrl-il, ibrl-plot), included from this folder's
# CMakeLists.txt. Unit: the pure parts; the script drives the binaries end to end on nav2d.
if(TARGET ib_train)
  ib_add_test(test_train_units LABEL unit TIMEOUT 60 SOURCES test_train_units.c LIBS ib_train)
  ib_add_script_test(train_cli LABEL unit TIMEOUT 300
                     COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/train_cli.sh)
endif()
